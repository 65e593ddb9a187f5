"""Predictor inputs: grayscale and RGBA converted, 0-255 float tensors and other inputs refused with
a message; very large images through LimitLongestSide (off in evaluation, on in iseg.predict)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from iseg.evaluation.runner import compose_eval_config
from iseg.inference.flip import Flip
from iseg.inference.limit_size import LimitLongestSide
from iseg.inference.predict import MAX_SIZE, make_predictor
from iseg.inference.predictor import Predictor, image_tensor
from iseg.inference.zoom_in import ZoomIn
from iseg.interaction.clicks import Click
from tests.test_predictor import DiskNet, _image

# ------------------------------------------------------------------------------------ set_image


def test_gray_rgba_and_uint8_tensors_are_converted() -> None:
    rgb = _image(24, 32)
    gray = rgb[:, :, 0].copy()
    rgba = np.concatenate([rgb, np.full((24, 32, 1), 7, np.uint8)], axis=2)
    expected = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(image_tensor(rgba), expected)
    torch.testing.assert_close(image_tensor(torch.from_numpy(rgb).permute(2, 0, 1).contiguous()), expected)
    gray_rgb = torch.from_numpy(gray).float().div(255).expand(3, -1, -1)
    torch.testing.assert_close(image_tensor(gray), gray_rgb)
    torch.testing.assert_close(image_tensor(gray[:, :, None]), gray_rgb)

    predictor = Predictor(DiskNet())
    predictor.set_image(rgba)
    with_alpha = predictor.add(Click(10, 10, True)).copy()
    predictor.set_image(rgb)
    np.testing.assert_array_equal(predictor.add(Click(10, 10, True)), with_alpha)
    predictor.set_image(gray)
    assert predictor.image_size == (24, 32) and predictor.add(Click(10, 10, True)).shape == (24, 32)


def test_float_tensor_outside_0_1_is_refused() -> None:
    image = torch.from_numpy(_image(8, 8)).permute(2, 0, 1).float()
    predictor = Predictor(DiskNet())
    with pytest.raises(ValueError, match=r"values in \[0, 1\], got values in \[\d+, 2\d\d\]; .*divide by 255"):
        predictor.set_image(image)  # 0-255 values: before, an all-zero map
    predictor.set_image(image / 255)
    normalised = (image / 255 - 0.45) / 0.225
    with pytest.raises(ValueError, match=r"\[0, 1\].*networks normalise it themselves"):
        predictor.set_image(normalised)
    with pytest.raises(ValueError, match=r"got values in \[nan"):
        predictor.set_image(torch.full((3, 4, 4), float("nan")))
    edge = torch.full((3, 4, 4), 1.0 + 1e-5)  # rounding noise passes, clamped
    assert float(image_tensor(edge).max()) == 1.0 and float(edge.max()) > 1.0, "the caller's tensor is not changed"


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((8, 8, 3), np.uint16), r"uint8 image .*got a uint16 array of shape \(8, 8, 3\): convert it to uint8"),
        (np.zeros((8, 8, 3), np.float32), r"got a float32 array .*torch.from_numpy\(image\).permute\(2, 0, 1\)"),
        (np.zeros((8, 8, 2), np.uint8), r"\(H, W\) gray or \(H, W, 4\) RGBA, got shape \(8, 8, 2\)"),
        (np.zeros((0, 8, 3), np.uint8), r"the image is empty: size \(0, 8\)"),
        (torch.zeros(1, 3, 8, 8), r"shape \(3, H, W\), got torch.float32 \(1, 3, 8, 8\): drop the batch dimension"),
        (torch.zeros(8, 8, 3), r"got torch.float32 \(8, 8, 3\): channels first"),
        (torch.zeros(3, 8, 8, dtype=torch.int32), r"float tensor .* or a uint8 one, got torch.int32"),
        ([[0, 1]], r"numpy array \(H, W, 3\) uint8 or a torch tensor \(3, H, W\), got list"),
    ],
)
def test_other_inputs_are_named_in_the_error(image, message) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        Predictor(DiskNet()).set_image(image)


def test_a_pil_image_gets_a_hint() -> None:
    from PIL import Image

    with pytest.raises(TypeError, match=r"got PngImageFile|got Image.*np.asarray\(image\)"):
        Predictor(DiskNet()).set_image(Image.new("RGB", (4, 4)))


# ------------------------------------------------------------------------------------ LimitLongestSide


def test_limit_longest_side_scales_the_frame_and_the_output_back() -> None:
    net = DiskNet(radius=3.0)
    image = _image(300, 150)
    predictor = Predictor(net, views={"limit_size": LimitLongestSide(max_size=100)})
    predictor.set_image(image)
    probs = predictor.add(Click(150, 60, True))
    seen, points = net.calls[-1]
    assert seen.shape == (1, 4, 100, 50) and probs.shape == (300, 150)
    full = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    torch.testing.assert_close(seen[:, :3], F.interpolate(full, size=(100, 50), mode="bilinear", align_corners=True))
    assert points[0, 0, :2].tolist() == [100 * 150 / 300, 50 * 60 / 150]  # zoom-in's size * y / extent
    assert probs[150, 60] > 0.9 and probs[20, 20] < 0.5
    assert LimitLongestSide(100).output_size(300, 150) == (100, 50) and LimitLongestSide(100).output_size(99, 100) is None

    small = Predictor(DiskNet(radius=3.0), views={"limit_size": LimitLongestSide(max_size=400)})
    plain = Predictor(DiskNet(radius=3.0))
    for predictor in (small, plain):
        predictor.set_image(image)
    np.testing.assert_array_equal(small.add(Click(150, 60, True)), plain.add(Click(150, 60, True)))  # within the limit
    with pytest.raises(ValueError, match="max_size must be a positive int or None"):
        LimitLongestSide(0)


def test_limit_after_zoom_in_in_the_reference_order_and_undo() -> None:
    net = DiskNet(radius=8.0)
    limit = LimitLongestSide(max_size=120)
    views = {"zoom_in": ZoomIn(target_size=64), "limit_size": limit, "flip": Flip()}
    predictor = Predictor(net, views=views)
    predictor.set_image(_image(240, 360))
    first = predictor.add(Click(120, 180, True)).copy()
    assert net.calls[-1][0].shape[-2:] == (80, 120) and limit.image_changed  # whole image scaled
    second = predictor.add(Click(125, 185, True)).copy()
    assert max(net.calls[-1][0].shape[-2:]) == 64 and not limit.image_changed  # zoom-in's crop: within the limit
    predictor.add(Click(60, 60, False))
    np.testing.assert_array_equal(predictor.undo(), second)
    np.testing.assert_array_equal(predictor.undo(), first)
    assert first.shape == (240, 360)


def test_off_in_evaluation_configs_on_in_predict() -> None:
    config = compose_eval_config().predictor
    assert list(config.views) == ["zoom_in", "limit_size", "flip"] and config.views.limit_size.max_size is None
    on = compose_eval_config(["predictor.views.limit_size.max_size=800"]).predictor
    predictor = instantiate(on)(DiskNet())
    assert isinstance(predictor.views["limit_size"], LimitLongestSide) and predictor.views["limit_size"].max_size == 800

    # off: the same numbers as without the view
    image, clicks = _image(90, 120), [Click(40, 50, True), Click(70, 20, False), Click(45, 55, True)]
    zoom = {"target_size": 48, "skip_clicks": 1}
    with_off = Predictor(DiskNet(), views={"zoom_in": ZoomIn(**zoom), "limit_size": LimitLongestSide(None), "flip": Flip()})
    without = Predictor(DiskNet(), views={"zoom_in": ZoomIn(**zoom), "flip": Flip()})
    for predictor in (with_off, without):
        predictor.set_image(image)
    for click in clicks:
        np.testing.assert_array_equal(with_off.add(click), without.add(click))

    assert MAX_SIZE == 800
    assert make_predictor(DiskNet()).views["limit_size"].max_size == MAX_SIZE
