"""ZoomIn: ROI arithmetic (half-to-even rounding, min crop, clamping), the rules that keep or
replace the ROI, the crop/click mapping and the inverse paste, with the reference's quirks."""

from __future__ import annotations

import pytest
import torch

from iseg.inference.zoom_in import (
    ZoomIn,
    ZoomInState,
    bbox_from_mask,
    bbox_iou,
    clamp_bbox,
    expand_bbox,
    roi_output_size,
)
from iseg.interaction.clicks import Click

H, W = 300, 400


def _image(channels: int = 4) -> torch.Tensor:
    """Distinct values everywhere, so crops and corners can be located."""
    return torch.rand(1, channels, H, W, generator=torch.Generator().manual_seed(0))


def _blob(rows: tuple[int, int], cols: tuple[int, int], value: float = 0.9) -> torch.Tensor:
    """(1, 1, H, W) probabilities with a rectangle of ``value`` (inclusive bounds), 0 elsewhere."""
    probs = torch.zeros(1, 1, H, W)
    probs[:, :, rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = value
    return probs


def _zoom_with(prev_probs: torch.Tensor | None, roi=None, **kwargs) -> ZoomIn:
    zoom = ZoomIn(**kwargs)
    zoom.set_state(ZoomInState(roi, prev_probs, None, False))
    return zoom


# ---------------------------------------------------------------------------- box arithmetic


def test_bbox_from_mask() -> None:
    mask = torch.zeros(10, 12, dtype=torch.bool)
    assert bbox_from_mask(mask) is None
    mask[2, 3] = mask[7, 9] = mask[4, 5] = True
    assert bbox_from_mask(mask) == (2, 7, 3, 9)


def test_expand_bbox_ratio_and_half_to_even_rounding() -> None:
    # 20x10 box, x1.4 -> 28x14 around (109.5, 54.5): ends at .5, rounded half to even
    assert expand_bbox((100, 119, 50, 59), 1.4) == (96, 124, 48, 62)
    # min crop 200 around 4.5: -95.5 -> -96 and 104.5 -> 104 (round-half-up would give -95, 105)
    assert expand_bbox((0, 9, 0, 9), 1.4, 200) == (-96, 104, -96, 104)


def test_expand_bbox_min_crop_applies_per_side() -> None:
    # 200 rows x 10 cols: rows grow by the ratio (280), columns only reach the minimum (50)
    rmin, rmax, cmin, cmax = expand_bbox((100, 299, 100, 109), 1.4, 50)
    assert (rmax - rmin, cmax - cmin) == (280, 50)


def test_clamp_bbox() -> None:
    assert clamp_bbox((-96, 104, 380, 420), H, W) == (0, 104, 380, W - 1)


def test_bbox_iou_is_product_of_segment_ious() -> None:
    assert bbox_iou((0, 9, 0, 9), (0, 9, 0, 9)) == 1.0
    assert bbox_iou((0, 9, 0, 9), (5, 14, 0, 9)) == pytest.approx(5 / 15)
    assert bbox_iou((0, 9, 0, 9), (5, 14, 5, 14)) == pytest.approx((5 / 15) ** 2)
    assert bbox_iou((0, 9, 0, 9), (20, 29, 0, 9)) == 0.0


def test_roi_output_size_keeps_aspect_or_squashes() -> None:
    assert roi_output_size((0, 239, 0, 159), 400) == (400, 267)  # the golden's 240x160 -> 400x267
    assert roi_output_size((96, 124, 192, 248), 100) == (51, 100)  # small ROIs are enlarged
    assert roi_output_size((0, 239, 0, 159), (448, 448)) == (448, 448)


# ---------------------------------------------------------------------------- transform


def test_first_click_uses_the_full_image() -> None:
    zoom = ZoomIn(target_size=100)
    image, clicks = _image(), [Click(10, 20, True)]
    out, out_clicks = zoom.transform(image, clicks)
    assert out is image and out_clicks == clicks and zoom.roi is None
    probs = _blob((100, 119), (200, 239))
    assert zoom.inv_transform(probs) is probs  # stored as the previous prediction, returned as is


def test_crop_covers_the_roi_and_clicks_are_mapped() -> None:
    zoom = _zoom_with(_blob((100, 119), (200, 239)), target_size=100, min_crop_size=20)
    image = _image()
    clicks = [Click(110, 210, True), Click(5, 5, False)]
    crop, mapped = zoom.transform(image, clicks)
    # box of mask and positive click (100..119, 200..239) x1.4 -> rows 96..124 (29), cols 192..248 (57)
    assert zoom.roi == (96, 124, 192, 248) and zoom.image_changed
    assert crop.shape == (1, 4, 51, 100) and zoom.crop_shape == (51, 100)
    # align_corners=True: the crop's corner pixels are the ROI's corner pixels, all four channels
    assert torch.allclose(crop[0, :, 0, 0], image[0, :, 96, 192], atol=1e-5)
    assert torch.allclose(crop[0, :, -1, -1], image[0, :, 124, 248], atol=1e-5)
    assert mapped[0] == Click(51 * (110 - 96) / 29, 100 * (210 - 192) / 57, True)
    assert mapped[1] == Click(51 * (5 - 96) / 29, 100 * (5 - 192) / 57, False)  # outside the crop: negative coords


def test_positive_clicks_enter_the_box_negative_ones_do_not() -> None:
    prev = _blob((100, 119), (200, 239))
    zoom = _zoom_with(prev, target_size=100, min_crop_size=0, expansion_ratio=1.0)
    zoom.transform(_image(), [Click(150, 210, True), Click(20, 20, False)])
    assert zoom.roi == (100, 150, 200, 240)  # ratio 1: centre 219.5 +- 20 -> 199.5, 239.5 -> 200, 240
    fcfi = _zoom_with(prev, target_size=100, min_crop_size=0, expansion_ratio=1.0, all_clicks_in_roi=True)
    fcfi.transform(_image(), [Click(150, 210, True), Click(20, 20, False)])
    assert fcfi.roi == (20, 150, 20, 240)


def test_click_pixel_is_truncated_for_the_box() -> None:
    zoom = _zoom_with(_blob((100, 119), (200, 239)), target_size=100, min_crop_size=0, expansion_ratio=1.0)
    zoom.transform(_image(), [Click(110, 210, True), Click(150.9, 210.0, True)])
    assert zoom.roi == (100, 150, 200, 240)


def test_roi_is_kept_while_clicks_stay_inside_and_boxes_overlap() -> None:
    old = (90, 130, 180, 260)
    zoom = _zoom_with(_blob((100, 121), (200, 241)), roi=old, target_size=100, min_crop_size=20)
    zoom.transform(_image(), [Click(110, 210, True), Click(0, 0, False)])  # negative click outside: irrelevant
    assert zoom.roi == old and not zoom.image_changed


def test_roi_is_replaced_when_a_positive_click_is_on_its_last_row() -> None:
    old = (90, 130, 180, 260)
    zoom = _zoom_with(_blob((100, 121), (200, 241)), roi=old, target_size=100, min_crop_size=20)
    zoom.transform(_image(), [Click(110, 210, True), Click(130, 210, True)])  # r == rmax counts as outside (r >= rmax)
    assert zoom.roi != old and zoom.image_changed


def test_negative_click_outside_replaces_the_roi_only_in_fcfi_mode() -> None:
    old = (90, 130, 180, 260)
    kwargs = dict(target_size=100, min_crop_size=20)
    ritm = _zoom_with(_blob((100, 121), (200, 241)), roi=old, **kwargs)
    ritm.transform(_image(), [Click(110, 210, True), Click(140, 210, False)])
    assert ritm.roi == old
    fcfi = _zoom_with(_blob((100, 121), (200, 241)), roi=old, all_clicks_in_roi=True, **kwargs)
    fcfi.transform(_image(), [Click(110, 210, True), Click(140, 210, False)])
    assert fcfi.roi != old and fcfi.image_changed


def test_roi_is_replaced_when_box_iou_drops_below_threshold() -> None:
    old = (90, 130, 180, 260)
    moved = _blob((100, 121), (215, 256))  # same size, shifted right: column IoU drops
    zoom = _zoom_with(moved, roi=old, target_size=100, min_crop_size=20)
    zoom.transform(_image(), [Click(110, 220, True), Click(111, 220, True)])
    new = zoom.roi
    assert bbox_iou(new, old) < 0.5 and zoom.image_changed
    relaxed = _zoom_with(moved, roi=old, target_size=100, min_crop_size=20, recompute_thresh_iou=0.3)
    relaxed.transform(_image(), [Click(110, 220, True), Click(111, 220, True)])
    assert relaxed.roi == old


def test_roi_threshold_is_strictly_above_prob_thresh() -> None:
    zoom = _zoom_with(_blob((100, 119), (200, 239), value=0.5), target_size=100)
    image = _image()
    out, _ = zoom.transform(image, [Click(110, 210, True), Click(111, 210, True)])
    assert out is image and zoom.roi is None  # 0.5 is not > 0.5: no mask, no crop


def test_empty_previous_mask_keeps_an_old_roi_and_squeezes_the_output_into_it() -> None:
    old = (50, 149, 100, 299)
    zoom = _zoom_with(torch.zeros(1, 1, H, W), roi=old, target_size=100)
    image = _image()
    out, clicks = zoom.transform(image, [Click(60, 120, True), Click(70, 130, True)])
    assert out is image and clicks[0] == Click(60, 120, True) and zoom.roi == old
    full = torch.ones(1, 1, H, W) * 0.8
    back = zoom.inv_transform(full)  # the full-image output squeezed into the old ROI
    assert back.shape == (1, 1, H, W)
    assert torch.allclose(back[0, 0, 50:150, 100:300], torch.full((100, 200), 0.8))
    assert back.sum() == pytest.approx(0.8 * 100 * 200, rel=1e-5)


def test_inverse_pastes_into_zeros() -> None:
    prev = _blob((100, 119), (200, 239)).clamp(min=0.3)  # 0.3 outside the object: not in the mask, not kept
    zoom = _zoom_with(prev, target_size=100, min_crop_size=20)
    crop, _ = zoom.transform(_image(), [Click(110, 210, True), Click(111, 210, True)])
    probs = torch.linspace(0.1, 0.9, crop.shape[3]).expand(1, 1, crop.shape[2], -1).contiguous()
    back = zoom.inv_transform(probs)
    rmin, rmax, cmin, cmax = zoom.roi
    assert back.shape == (1, 1, H, W)
    inside = back[0, 0, rmin : rmax + 1, cmin : cmax + 1]
    assert torch.allclose(inside[:, 0], torch.full((rmax - rmin + 1,), 0.1))  # align_corners: ends map to ends
    assert torch.allclose(inside[:, -1], torch.full((rmax - rmin + 1,), 0.9))
    outside = back.clone()
    outside[0, 0, rmin : rmax + 1, cmin : cmax + 1] = 0
    assert outside.abs().sum() == 0
    assert zoom.get_state().prev_probs is back  # the pasted map drives the next ROI


def test_skip_clicks_counts_clicks_not_predictions() -> None:
    zoom = _zoom_with(_blob((100, 119), (200, 239)), target_size=100, skip_clicks=2)
    image = _image()
    out, _ = zoom.transform(image, [Click(110, 210, True), Click(111, 210, True)])
    assert out is image and zoom.roi is None
    out, _ = zoom.transform(image, [Click(110, 210, True), Click(111, 210, True), Click(112, 210, True)])
    assert out is not image and zoom.roi is not None


def test_fixed_mode_crops_the_whole_image_from_the_first_click() -> None:
    zoom = ZoomIn.fixed(64)
    assert zoom.skip_clicks == -1 and zoom.target_size == (64, 64)
    image = _image()
    crop, clicks = zoom.transform(image, [Click(150, 200, True)])
    assert zoom.roi == (0, H - 1, 0, W - 1) and crop.shape == (1, 4, 64, 64)
    assert clicks[0] == Click(64 * 150 / H, 64 * 200 / W, True)
    back = zoom.inv_transform(torch.full((1, 1, 64, 64), 0.7))
    assert back.shape == (1, 1, H, W) and torch.allclose(back, torch.full_like(back, 0.7))


def test_recompute_only_without_roi_and_for_small_objects() -> None:
    small = _zoom_with(_blob((100, 119), (200, 239)), target_size=100, skip_clicks=0, min_crop_size=20)
    assert small.needs_recompute()
    large = _zoom_with(_blob((0, 250), (0, 350)), target_size=100, skip_clicks=0, min_crop_size=20)
    assert not large.needs_recompute()
    ritm = _zoom_with(_blob((100, 119), (200, 239)), target_size=100, skip_clicks=1, min_crop_size=20)
    assert not ritm.needs_recompute()  # skip_clicks > 0: the second click crops anyway
    with_roi = _zoom_with(_blob((100, 119), (200, 239)), roi=(0, 9, 0, 9), skip_clicks=0, min_crop_size=20)
    assert not with_roi.needs_recompute()


def test_state_round_trip_and_reset() -> None:
    zoom = _zoom_with(_blob((100, 119), (200, 239)), target_size=100, min_crop_size=20)
    zoom.transform(_image(), [Click(110, 210, True), Click(111, 210, True)])
    state = zoom.get_state()
    zoom.reset()
    assert zoom.roi is None and zoom.get_state().prev_probs is None and not zoom.image_changed
    zoom.set_state(state)
    restored = zoom.get_state()
    assert restored.prev_probs is state.prev_probs and zoom.roi == (96, 124, 192, 248)
    assert (restored.roi_shape, restored.image_changed) == ((51, 100), True)


def test_transform_needs_one_image() -> None:
    with pytest.raises(ValueError, match=r"\(2, 4, 10, 10\)"):
        ZoomIn().transform(torch.zeros(2, 4, 10, 10), [Click(1, 1, True)])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"target_size": 0}, "target_size"),
        ({"target_size": (400,)}, "target_size"),
        ({"expansion_ratio": -1.0}, "expansion_ratio"),
        ({"skip_clicks": -2}, "skip_clicks"),
    ],
)
def test_bad_parameters_name_the_value(params, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ZoomIn(**params)


def test_config_lists_and_defaults() -> None:
    from_list = ZoomIn(target_size=[448, 448], skip_clicks=-1)  # YAML gives lists
    assert from_list.target_size == (448, 448) and from_list.skip_clicks == -1
    defaults = ZoomIn(target_size=600)
    assert (defaults.skip_clicks, defaults.expansion_ratio, defaults.min_crop_size) == (1, 1.4, 200)
    assert (defaults.recompute_thresh_iou, defaults.prob_thresh, defaults.all_clicks_in_roi) == (0.5, 0.5, False)


def test_view_moves_scribbles_and_boxes_like_clicks() -> None:
    """The view maps every prompt through its points: a scribble's points land where the same clicks do."""
    from iseg.inference.views import Frame
    from iseg.interaction.prompts import Box, Scribble

    zoom = _zoom_with(_blob((100, 119), (200, 239)), target_size=100, min_crop_size=20)
    clicks = [Click(110, 210, True), Click(111, 212, True)]
    _, moved_clicks = zoom.transform(_image(), clicks)
    zoom = _zoom_with(_blob((100, 119), (200, 239)), target_size=100, min_crop_size=20)
    image = _image()
    frame = Frame(image[:, :3], image[:, 3:], [[Scribble(((110, 210), (111, 212)), True), Box(110, 210, 111, 212)]])
    out = zoom.forward(frame)
    scribble, box = out.prompts[0]
    assert scribble.points == tuple((c.y, c.x) for c in moved_clicks)
    assert (box.y0, box.x0, box.y1, box.x1) == (*scribble.points[0], *scribble.points[1])
    assert out.image.shape[1] == 3 and out.prev.shape[1] == 1 and out.image.shape[2:] == out.prev.shape[2:]
