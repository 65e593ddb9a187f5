"""Protocol metrics: per-click IoU, NoC@t, NoF@t and mIoU@k, with the reference's number types.

IoUs are computed in float64 and stored as float32; NoC thresholds are compared with the
float32 arrays in float32, so a threshold such as 0.8500000000000001 (from ``np.arange``) is
met by an IoU of exactly 0.85. NoF counts samples whose NoC equals ``max_clicks``, which also
includes a sample that reaches the threshold exactly at the last click (the papers' ">=20" column).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_THRESHOLDS = (0.80, 0.85, 0.90)
DEFAULT_MIOU_CLICKS = (1, 2, 3, 5, 10, 20)


def iou_counts(pred_mask: np.ndarray, gt: np.ndarray, ignore_label: int = -1) -> tuple[int, int]:
    """(intersection, union) pixel counts of ``pred_mask`` and ``gt == 1``, ignore pixels excluded."""
    pred_mask = np.asarray(pred_mask, dtype=bool)
    gt = np.asarray(gt)
    if pred_mask.shape != gt.shape:
        raise ValueError(f"pred_mask shape {pred_mask.shape} differs from gt shape {gt.shape}")
    valid = gt != ignore_label
    gt_fg = gt == 1
    intersection = np.count_nonzero(pred_mask & gt_fg & valid)
    union = np.count_nonzero((pred_mask | gt_fg) & valid)
    return int(intersection), int(union)


def iou_from_counts(intersection: int, union: int) -> float:
    """IoU in float64; NaN when the union is empty (the reference's 0/0), which never meets a threshold."""
    return intersection / union if union else float("nan")


def iou(pred_mask: np.ndarray, gt: np.ndarray, ignore_label: int = -1) -> float:
    """IoU of a binary prediction with ``gt`` (1/0/-1) in float64; see :func:`iou_from_counts`."""
    return iou_from_counts(*iou_counts(pred_mask, gt, ignore_label))


def noc(ious: Sequence[float] | np.ndarray, threshold: float, max_clicks: int = 20) -> int:
    """Number of clicks to reach ``threshold``: 1 + index of the first IoU >= it, else ``max_clicks``."""
    reached = np.asarray(ious, dtype=np.float32) >= np.float32(threshold)
    return int(np.argmax(reached)) + 1 if reached.any() else max_clicks


def noc_thresholds(target_iou: float) -> list[float]:
    """The reference's NoC thresholds for a stopping IoU: 0.80, 0.85, 0.90 (and 0.95 if target > 0.95)."""
    return np.arange(0.8, min(0.95, target_iou) + 0.001, 0.05).tolist()


def threshold_name(threshold: float) -> str:
    """Metric suffix of a threshold: 0.8500000000000001 -> '85'."""
    return str(int(round(threshold * 100)))


def mean_iou_curve(iou_arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Mean IoU per click (float32), all arrays truncated to the shortest one as the reference does."""
    if not iou_arrays:
        raise ValueError("iou_arrays is empty: no sample was evaluated")
    shortest = min(len(a) for a in iou_arrays)
    return np.array([np.asarray(a, dtype=np.float32)[:shortest] for a in iou_arrays]).mean(axis=0)


def summarize(
    iou_arrays: Sequence[np.ndarray],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    max_clicks: int = 20,
    miou_clicks: Sequence[int] = DEFAULT_MIOU_CLICKS,
    count_name: str = "NoC",
) -> dict[str, float]:
    """Dataset metrics: ``NoC@85`` (mean), ``NoF@85`` (count), ... and ``mIoU@k`` for available k.

    ``count_name`` names the count (``NoS`` when each step is a round of scribbles).
    """
    if not iou_arrays:
        raise ValueError("iou_arrays is empty: no sample was evaluated")
    summary: dict[str, float] = {}
    for threshold in thresholds:
        nocs = np.array([noc(a, threshold, max_clicks) for a in iou_arrays])
        summary[f"{count_name}@{threshold_name(threshold)}"] = float(nocs.mean())
        summary[f"NoF@{threshold_name(threshold)}"] = int((nocs == max_clicks).sum())
    curve = mean_iou_curve(iou_arrays)
    for k in miou_clicks:
        if k <= len(curve):
            summary[f"mIoU@{k}"] = float(curve[k - 1])
    return summary
