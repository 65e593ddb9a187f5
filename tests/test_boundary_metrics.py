"""Boundary IoU and ASSD (FCFI's metrics): hand-computed cases, the ignore rule, the band as the
reference builds it (iterated 3x3 erosion of the zero-padded mask), degenerate masks, summaries."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from iseg.evaluation.protocol import summarize_samples
from iseg.interaction.boundary_metrics import (
    BoundaryMetrics,
    assd,
    band_width,
    boundary_iou,
    inner_band,
    outer_contour,
    summarize_boundary,
)
from iseg.interaction.clicks import Click
from tests.protocol_helpers import evaluate_with

# 100 x 100 image: diagonal 141.4, band width round(2.83) = 3 px
SHAPE = (100, 100)


def square(top: int, left: int, size: int, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


def test_band_width_is_two_percent_of_the_diagonal_at_least_one() -> None:
    assert band_width(SHAPE) == 3
    assert band_width((480, 640)) == 16  # 0.02 * 800
    assert band_width((10, 10)) == 1  # round(0.28) = 0 -> at least 1
    with pytest.raises(ValueError, match="dilation_ratio must be > 0, got 0"):
        band_width(SHAPE, 0)


def test_identical_masks() -> None:
    gt = square(20, 20, 40).astype(np.int64)
    assert BoundaryMetrics(gt)(gt == 1) == (1.0, 0.0)


def test_square_against_the_same_square_shifted_two_columns() -> None:
    """Bands are 3-px rings of 444 px sharing 296 px: BIoU 0.5. Contours (156 px each): the summed
    distances are 156 each way (hand count: 0 on shared edges, 2 along the shifted sides, 1 near
    the corners), so ASSD = 312 / 312 = 1."""
    gt = square(20, 20, 40).astype(np.int64)
    pred = square(20, 22, 40)
    assert np.count_nonzero(inner_band(pred, 3)) == 444
    assert np.count_nonzero(outer_contour(pred)) == 156
    assert boundary_iou(pred, gt) == pytest.approx(296 / 592, abs=0)
    assert assd(pred, gt) == pytest.approx(1.0, abs=1e-12)


def test_holes_widen_the_band_but_have_no_contour() -> None:
    gt = square(20, 20, 40).astype(np.int64)
    pred = gt == 1
    pred[38:42, 38:42] = False  # 4x4 hole: 84 more band pixels around it (10x10 - 4x4)
    biou, distance = BoundaryMetrics(gt)(pred)
    assert biou == pytest.approx(444 / 528, abs=0) and distance == 0.0


def test_empty_prediction() -> None:
    """BIoU 0; the contour distance of an empty prediction is measured to the virtual pixel
    (row -1, column 0): what scipy's EDT gives for an image without a zero pixel (the reference)."""
    gt = square(20, 20, 40).astype(np.int64)
    empty = np.zeros(SHAPE, dtype=bool)
    contour_rows, contour_cols = np.nonzero(outer_contour(gt == 1))
    expected = np.hypot(contour_rows + 1.0, contour_cols).mean()
    assert BoundaryMetrics(gt)(empty) == (0.0, pytest.approx(expected, rel=1e-12))
    scipy_map = distance_transform_edt(np.ones(SHAPE, dtype=np.uint8))
    assert scipy_map[contour_rows, contour_cols].mean() == pytest.approx(expected, rel=1e-12)


def test_ignore_pixels_do_not_end_the_object_and_are_excluded_near_background() -> None:
    """Object 40x40 inside a 2-px ignore ring: the object's band is its 1-px edge (156 px, the
    pixels within 3 px of background), the whole ring is excluded. Predicting the object gives a
    444-px band: 156/444; predicting object + ring gives a band of 492 px of which 336 are excluded: 1."""
    gt = np.zeros(SHAPE, dtype=np.int64)
    gt[28:72, 28:72] = -1
    gt[30:70, 30:70] = 1
    metrics = BoundaryMetrics(gt)
    assert np.count_nonzero(metrics.gt_band) == 156 and np.count_nonzero(metrics.excluded) == 336
    assert metrics.boundary_iou(gt == 1) == pytest.approx(156 / 444, abs=0)
    assert metrics.boundary_iou(gt != 0) == pytest.approx(1.0, abs=0)
    assert metrics.assd(gt == 1) == 0.0  # ASSD sees gt == 1 only


def _reference_style_biou(pred: np.ndarray, gt: np.ndarray, ratio: float = 0.02) -> float:
    """The reference's construction restated: GT coded 0/1/255 as uint8, zero-padded, eroded by a
    3x3 square d times, band = mask - eroded; the union drops GT band value 255."""

    def band(mask: np.ndarray) -> np.ndarray:
        height, width = mask.shape
        d = max(1, int(round(ratio * np.sqrt(height**2 + width**2))))
        padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=d)[1:-1, 1:-1]
        return mask - eroded

    pred_band, gt_band = band(pred.astype(np.uint8)), band(gt.astype(np.uint8))
    return ((pred_band == 1) & (gt_band == 1)).sum() / (((pred_band == 1) | (gt_band == 1)) & (gt_band != 255)).sum()


def test_matches_the_reference_construction_on_random_masks_with_ignore() -> None:
    rng = np.random.default_rng(0)
    for trial in range(12):
        shape = (int(rng.integers(20, 90)), int(rng.integers(20, 90)))
        blobs = cv2.GaussianBlur(rng.random(shape), (0, 0), 4)
        gt = np.where(blobs > np.quantile(blobs, 0.6), 1, 0).astype(np.int64)
        ring = cv2.dilate(gt.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & (gt == 0)
        gt[ring & (rng.random(shape) < 0.8)] = -1
        pred = cv2.GaussianBlur(rng.random(shape), (0, 0), 3) > 0.5
        assert BoundaryMetrics(gt).boundary_iou(pred) == pytest.approx(_reference_style_biou(pred, gt), abs=1e-12)


def test_shape_mismatch_and_degenerate_union() -> None:
    gt = square(20, 20, 40).astype(np.int64)
    with pytest.raises(ValueError, match=r"pred_mask shape \(10, 10\) differs from gt shape \(100, 100\)"):
        BoundaryMetrics(gt).boundary_iou(np.zeros((10, 10), bool))
    nothing = np.zeros(SHAPE, dtype=np.int64)
    biou, distance = BoundaryMetrics(nothing)(np.zeros(SHAPE, bool))
    assert np.isnan(biou) and np.isnan(distance)


def test_protocol_records_boundary_metrics_and_summarizes_them() -> None:
    gt = square(20, 20, 40).astype(np.int64)
    masks = [square(20, 22, 40), gt == 1]  # shifted square first, then exact

    def predict(clicks: list[Click]) -> np.ndarray:
        return masks[len(clicks) - 1].astype(np.float32)

    plain = evaluate_with(predict, gt, max_clicks=2, target_iou=1.01)
    assert plain.bious is None and plain.assds is None
    result = evaluate_with(predict, gt, max_clicks=2, target_iou=1.01, boundary_metrics=True)
    np.testing.assert_array_equal(result.bious, np.float32([0.5, 1.0]))
    np.testing.assert_array_equal(result.assds, np.float32([1.0, 0.0]))
    assert result.bious.dtype == np.float32
    summary = summarize_samples([result, result], [0.8], max_clicks=2)
    assert summary["mBIoU@1"] == 0.5 and summary["ASSD@1"] == 1.0 and summary["mBIoU@2"] == 1.0
    assert "mBIoU@3" not in summary
    with pytest.raises(ValueError, match="boundary metrics exist for 1 of 2 samples only"):
        summarize_samples([result, plain], [0.8], max_clicks=2)


def test_summary_truncates_to_the_shortest_like_miou() -> None:
    summary = summarize_boundary([np.float32([0.2, 0.4]), np.float32([0.6])], [np.float32([3, 1]), np.float32([5])])
    assert summary == {"mBIoU@1": pytest.approx(0.4), "ASSD@1": 4.0}
