"""S2M at inference: the scribble encoder draws the reference's strokes, the S2M adapter sees the open
round on the committed mask (Predictor.commit), the official network reproduces the reference
through the public predictor, and the multi-object predictor fuses objects with soft aggregation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from iseg.inference.aggregation import aggregate, single_object_logit
from iseg.inference.multi_object import MultiObjectPredictor
from iseg.inference.predictor import Predictor
from iseg.interaction.encoders import make_encoder
from iseg.interaction.prompts import Box, Click, Scribble
from iseg.models.inputs import ClickInputs
from iseg.models.s2m.inputs import S2MInputs
from iseg.models.s2m.network import IMAGENET_MEAN, IMAGENET_STD
from tests.golden import fill_rule_state_dict, load_io, load_spec

VARIANT = "s2m_deeplabv3plus_resnet50"
# the golden input's strokes, (x, y) as the README gives them
POSITIVE_XY, NEGATIVE_XY = [[119, 90], [144, 86]], [[31, 46], [61, 46]]


def _stroke(xy: list[list[int]], positive: bool) -> Scribble:
    return Scribble(tuple((y, x) for x, y in xy), positive)


class TinyS2M(nn.Module):
    """Stand-in with S2M's interface: z rises near positive strokes and where the previous mask is 1."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def default_inputs(self) -> S2MInputs:
        return S2MInputs()

    def forward(self, image: torch.Tensor, prev_mask: torch.Tensor, scribbles: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls.append((prev_mask.clone(), scribbles.clone()))
        near = F.avg_pool2d(scribbles, 9, stride=1, padding=4, count_include_pad=False)
        z = 30 * (near[:, :1] - near[:, 1:2]) + 6 * (prev_mask - 0.5)
        return {"object_logits": z, "instances": single_object_logit(z)}


def _image(height: int = 40, width: int = 56) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_encoder_draws_the_reference_strokes() -> None:
    io = load_io(VARIANT)
    encoder = make_encoder("scribble_maps")
    maps = encoder([[_stroke(POSITIVE_XY, True), _stroke(NEGATIVE_XY, False)]], "cpu", size=(160, 240))["scribbles"]
    assert maps.shape == (1, 2, 160, 240) and maps.dtype == torch.float32
    np.testing.assert_array_equal(maps[0].numpy(), io["input"][0, 4:6])


def test_a_click_is_a_disk_and_a_box_is_refused() -> None:
    encoder = make_encoder("scribble_maps")
    maps = encoder([[Click(10, 12, False)]], "cpu", size=(20, 30))["scribbles"][0]
    assert maps[0].sum() == 0 and maps[1, 10, 12] == 1 and int(maps[1].sum()) == 29  # a radius-3 disk
    with pytest.raises(TypeError, match="'scribble_maps' encoder takes scribbles and clicks, got Box"):
        encoder([[Box(1, 1, 5, 5)]], "cpu", size=(20, 30))


def test_official_network_through_the_predictor_matches_the_reference(tmp_path) -> None:
    """commit(previous mask) then the two strokes: the network sees exactly the golden input."""
    io = load_io(VARIANT)
    path = tmp_path / "s2m.pth"
    torch.save(fill_rule_state_dict(load_spec(VARIANT)), path)
    predictor = Predictor.from_checkpoint(path, pred_thr=0.5)
    x = torch.from_numpy(io["input"][0])
    image = x[:3] * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    predictor.set_image(image.clamp(0, 1))
    predictor.commit(io["input"][0, 3])
    predictor.add(_stroke(POSITIVE_XY, True))
    probs = predictor.add(_stroke(NEGATIVE_XY, False))
    np.testing.assert_allclose(probs, io["agg_prob"][0, 0], atol=1e-5, rtol=0)


def test_commit_starts_a_round_on_the_committed_mask_and_undo_takes_it_back() -> None:
    net = TinyS2M()
    predictor = Predictor(net, pred_thr=0.5)
    predictor.set_image(_image())
    first = predictor.add(Scribble(((10, 10), (10, 20)), True))
    second = predictor.add(Scribble(((30, 40),), False))
    prev, scribbles = net.calls[-1]
    assert prev.abs().sum() == 0 and scribbles[0, 0].sum() > 0 and scribbles[0, 1].sum() > 0  # one round, no commit yet
    committed = predictor.commit()
    np.testing.assert_array_equal(committed, second)
    np.testing.assert_array_equal(predictor.commit(), second)  # an empty round: no new undo step (see below)
    predictor.add(Scribble(((20, 50),), True))
    prev, scribbles = net.calls[-1]
    np.testing.assert_allclose(prev[0, 0].numpy(), second, atol=1e-7)  # the committed (soft) map
    assert scribbles[0, 1].sum() == 0 and scribbles[0, 0, 20, 50] == 1 and scribbles[0, 0, 10, 15] == 0  # this round only
    predictor.undo()
    np.testing.assert_array_equal(predictor.probs, second)
    predictor.undo()  # the commit
    predictor.add(Scribble(((20, 50),), True))
    prev, scribbles = net.calls[-1]
    assert prev.abs().sum() == 0 and scribbles[0, 0, 10, 15] == 1  # back in the first round
    predictor.undo(), predictor.undo()
    np.testing.assert_array_equal(predictor.probs, first)


def test_click_adapters_see_every_prompt_across_commits() -> None:
    inputs = ClickInputs(prev_mask=True)
    prompts, last, committed = [Click(1, 1, True), Click(2, 2, False)], torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    seen, prev = inputs.round_inputs(prompts, 1, last, committed)
    assert seen == prompts and prev is last
    seen, prev = S2MInputs().round_inputs(prompts, 1, last, committed)
    assert seen == prompts[1:] and prev is committed


def test_commit_refuses_a_map_of_the_wrong_size() -> None:
    predictor = Predictor(TinyS2M())
    predictor.set_image(_image())
    with pytest.raises(ValueError, match=r"committed map has shape \(3, 3\), expected the image's \(40, 56\)"):
        predictor.commit(np.zeros((3, 3)))


def test_multi_object_label_map_aggregation_and_undo() -> None:
    net = TinyS2M()
    multi = MultiObjectPredictor(net, object_ids=(3, 7))
    multi.set_image(_image())
    assert (multi.label_map() == 0).all() and multi.probabilities().shape == (3, 40, 56)
    after_one = multi.add(Scribble(((10, 8), (10, 16)), True), object_id=3).copy()
    assert after_one[10, 12] == 3 and after_one[30, 45] == 0
    # object 7's network saw object 3's stroke as a negative
    _, scribbles = net.calls[-1]
    assert scribbles[0, 0].sum() == 0 and scribbles[0, 1, 10, 12] == 1
    labels = multi.add(Scribble(((30, 40), (30, 50)), True), object_id=7)
    assert labels[10, 12] == 3 and labels[30, 45] == 7
    probabilities = multi.probabilities()
    np.testing.assert_allclose(probabilities.sum(0), 1.0, atol=1e-5)
    per_object = np.stack([p.probs for p in multi._predictors.values()])
    np.testing.assert_allclose(probabilities, aggregate(torch.from_numpy(per_object)[None])[0].numpy(), atol=1e-6)
    multi.add(Scribble(((20, 20),), False), object_id=0)
    multi.undo()
    np.testing.assert_array_equal(multi.label_map(), labels)
    multi.undo()
    np.testing.assert_array_equal(multi.label_map(), after_one)
    multi.reset()
    assert (multi.label_map() == 0).all()


def test_multi_object_commit_feeds_each_object_its_aggregated_map() -> None:
    net = TinyS2M()
    for hard in (False, True):
        multi = MultiObjectPredictor(net, object_ids=(1, 2), hard_commit=hard)
        multi.set_image(_image())
        multi.add(Scribble(((10, 8), (10, 16)), True), object_id=1)
        multi.add(Scribble(((30, 40), (30, 50)), True), object_id=2)
        fused = multi.probabilities()
        multi.commit()
        multi.add(Scribble(((5, 50),), False), object_id=0)
        prev_object2, scribbles = net.calls[-1]
        expected = (fused.argmax(0) == 2).astype(np.float32) if hard else fused[2]
        np.testing.assert_allclose(prev_object2[0, 0].numpy(), expected, atol=1e-6)
        assert scribbles[0, 0].sum() == 0 and scribbles[0, 1, 5, 50] == 1  # only the new round's stroke


def test_multi_object_errors_name_the_id() -> None:
    multi = MultiObjectPredictor(TinyS2M(), object_ids=(1, 2))
    multi.set_image(_image())
    with pytest.raises(KeyError, match=r"unknown object id 5: this image's objects are \[1, 2\]"):
        multi.add(Scribble(((1, 1),), True), object_id=5)
    with pytest.raises(ValueError, match="distinct positive integers"):
        multi.set_image(_image(), object_ids=(0, 1))
    with pytest.raises(RuntimeError, match="set_image"):
        MultiObjectPredictor(TinyS2M()).add(Scribble(((1, 1),), True), object_id=1)


def test_padding_view_matches_the_reference_padding_and_crops_back() -> None:
    """42x50 -> 48x64 with (3, 3) rows and (7, 7) columns of mean colour; strokes move with the frame."""
    from iseg.inference.pad_view import PadToMultiple, pad_amounts
    from iseg.inference.views import Frame

    assert pad_amounts(42, 16) == (3, 3) and pad_amounts(50, 16) == (7, 7) and pad_amounts(49, 16) == (7, 8)
    net = TinyS2M()
    padded = Predictor(net, views={"pad": PadToMultiple(16)}, pred_thr=0.5)
    plain = Predictor(TinyS2M(), pred_thr=0.5)
    image = _image(42, 50)
    for predictor in (padded, plain):
        predictor.set_image(image)
    stroke = Scribble(((20, 20), (20, 30)), True)
    probs = padded.add(stroke)
    reference = plain.add(stroke)
    assert probs.shape == (42, 50)
    np.testing.assert_allclose(probs, reference, atol=1e-6)  # TinyS2M is local: padding changes nothing inside
    _, scribbles = net.calls[-1]
    assert scribbles.shape[-2:] == (48, 64) and scribbles[0, 0, 23, 32] == 1  # (20, 25) moved by (3, 7)
    out = PadToMultiple(16).forward(Frame(torch.zeros(1, 3, 42, 50), torch.ones(1, 1, 42, 50), [[stroke]]))
    torch.testing.assert_close(out.image[0, :, 0, 0], torch.tensor(IMAGENET_MEAN))  # 0 after normalisation
    assert out.prev[0, 0, 0, 0] == 0 and out.prev[0, 0, 3, 7] == 1
