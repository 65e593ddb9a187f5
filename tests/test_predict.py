"""The one-call API: predict(image, clicks, checkpoint, refiner) gives what the predictor gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iseg.inference.brs import FeatureBRS
from iseg.inference.flip import Flip
from iseg.inference.predict import load_network, make_predictor, predict
from iseg.inference.predictor import Predictor
from iseg.inference.zoom_in import ZoomIn
from iseg.interaction.prompts import Click
from tests.test_predictor import _checkpoint, _image

CLICKS = [Click(20, 30, True), Click(40, 70, False), Click(22, 33, True)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint("v1_override", tmp_path_factory.mktemp("predict"))



def test_predict_equals_the_configured_predictor_clicked_by_hand(checkpoint, one_thread):
    image = _image(64, 96)
    probs = predict(image, CLICKS, checkpoint, return_probs=True)
    by_hand = Predictor(load_network(checkpoint), views={"zoom_in": ZoomIn(target_size=400), "flip": Flip()})
    by_hand.set_image(image)
    for click in CLICKS:
        expected = by_hand.add(click)
    np.testing.assert_array_equal(probs, expected)
    mask = predict(image, [(c.y, c.x, c.is_positive) for c in CLICKS], checkpoint)  # tuples work too
    assert mask.dtype == bool and np.array_equal(mask, expected > 0.49)
    assert load_network(checkpoint) is load_network(str(checkpoint))  # loaded once


def _conv_weights(net) -> list:
    return [p for p in net.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1]


def test_networks_read_from_files_run_channels_last_with_the_stored_values(checkpoint, one_thread):
    """read_network gives the fast memory format to predict, the demo and Predictor.from_checkpoint;
    the stored layout on request (what evaluate_checkpoint and the ONNX export take)."""
    import torch

    from iseg.inference.backends import read_network

    fast, stored = read_network(checkpoint), read_network(checkpoint, channels_last=False)
    for net, channels_last in ((fast, True), (load_network(checkpoint), True), (Predictor.from_checkpoint(checkpoint).net, True), (stored, False)):
        weights = _conv_weights(net)
        assert weights and all(w.is_contiguous(memory_format=torch.channels_last) == channels_last for w in weights)
        assert all(w.is_contiguous() != channels_last for w in weights)
    image = _image(64, 96)
    probs = {}
    for name, net in (("fast", fast), ("stored", stored)):
        predictor = Predictor(net, views={"flip": Flip()})
        predictor.set_image(image)
        probs[name] = [predictor.add(click) for click in CLICKS]
    for a, b in zip(probs["fast"], probs["stored"]):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_refiner_by_name_or_object(checkpoint, one_thread):
    image = _image(64, 96)
    named = make_predictor(checkpoint, "fbrs_c")
    assert isinstance(named.refiner, FeatureBRS) and named.refiner.mode == "C" and named.refiner.net_clicks_limit == 8
    mine = FeatureBRS("A", net_clicks_limit=2)
    assert make_predictor(checkpoint, mine).refiner is mine
    assert predict(image, CLICKS, checkpoint, refiner="fbrs_c").shape == (64, 96)


def test_bad_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth does not exist"):
        predict(_image(), CLICKS, tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="at least one click"):
        predict(_image(), [], tmp_path / "nope.pth")


def test_the_top_level_name():
    import iseg

    assert iseg.predict is predict
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        iseg.nope  # noqa: B018
