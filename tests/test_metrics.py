"""IoU, NoC, NoF and mIoU@k with the reference's float32 semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iseg.interaction.metrics import iou, iou_counts, mean_iou_curve, noc, noc_thresholds, summarize


def test_iou_excludes_ignore_from_both_terms():
    gt = np.array([[1, 1, 0, -1], [0, 0, -1, 1]])
    pred = np.array([[1, 0, 1, 1], [0, 0, 1, 1]], dtype=bool)
    assert iou_counts(pred, gt) == (2, 4)
    assert iou(pred, gt) == 0.5
    assert math.isnan(iou(np.zeros((2, 2), bool), np.zeros((2, 2))))  # empty union: the reference's 0/0
    with pytest.raises(ValueError, match="pred_mask shape"):
        iou(np.zeros((2, 3), bool), np.zeros((3, 2)))


def test_noc_uses_float32_thresholds():
    """float32(0.9) = 0.89999998 is below 0.9000000000000001 in float64 but meets it in float32."""
    thresholds = noc_thresholds(1.01)
    ious = np.array([0.5, 0.85, 0.9, 0.95], dtype=np.float32)
    assert float(ious[2]) < thresholds[2] and float(ious[3]) < thresholds[3]
    assert [noc(ious, t) for t in thresholds] == [2, 2, 3, 4]
    assert [noc(ious.astype(np.float64), t) for t in thresholds] == [2, 2, 3, 4]  # stored IoUs are float32
    assert noc(ious, np.nextafter(np.float32(0.9), np.float32(1)).item()) == 4
    assert noc(np.array([0.1, 0.2], dtype=np.float32), 0.8) == 20
    assert noc([], 0.8, max_clicks=5) == 5
    summary = summarize([ious], thresholds=thresholds)
    assert (summary["NoC@90"], summary["NoC@95"]) == (3, 4)


def test_noc_thresholds_follow_the_target():
    assert noc_thresholds(0.90) == [0.8, 0.8500000000000001, 0.9000000000000001]
    assert noc_thresholds(1.01) == [0.8, 0.8500000000000001, 0.9000000000000001, 0.9500000000000002]
    assert noc_thresholds(0.85) == [0.8, 0.8500000000000001]


def test_nof_counts_noc_equal_to_max_clicks_including_reached_at_the_last_click():
    reached_late = np.full(20, 0.5, dtype=np.float32)
    reached_late[19] = 0.95
    never = np.full(20, 0.5, dtype=np.float32)
    early = np.array([0.2, 0.91], dtype=np.float32)
    summary = summarize([reached_late, never, early], thresholds=[0.85, 0.9])
    assert summary["NoC@85"] == pytest.approx((20 + 20 + 2) / 3)
    assert summary["NoF@85"] == 2
    assert summary["NoF@90"] == 2


def test_miou_truncates_to_the_shortest_list():
    a = np.array([0.1, 0.3, 0.9], dtype=np.float32)
    b = np.array([0.2, 0.5], dtype=np.float32)
    curve = mean_iou_curve([a, b])
    assert curve.dtype == np.float32
    np.testing.assert_allclose(curve, [0.15, 0.4], rtol=1e-6)
    summary = summarize([a, b])
    assert set(k for k in summary if k.startswith("mIoU")) == {"mIoU@1", "mIoU@2"}
    assert summary["mIoU@2"] == pytest.approx(0.4, rel=1e-6)
    full = summarize([np.linspace(0, 1, 20, dtype=np.float32)] * 2)
    assert [k for k in full if k.startswith("mIoU")] == ["mIoU@1", "mIoU@2", "mIoU@3", "mIoU@5", "mIoU@10", "mIoU@20"]
    assert full["NoC@80"] == 17  # first value >= 0.8 is linspace index 16


def test_empty_dataset_is_reported():
    with pytest.raises(ValueError, match="iou_arrays is empty"):
        summarize([])
