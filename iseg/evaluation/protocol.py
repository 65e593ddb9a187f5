"""The NoC evaluation protocol: simulated clicks, per-click IoU, early stop, dataset summary.

One sample: for k = 1..max_clicks the clicker adds a click from the previous binary mask (all
false before the first click), the predictor returns probabilities, the mask is ``probs > pred_thr``
and its IoU is recorded; the loop stops after click k when IoU >= ``target_iou`` (in float64) and
k >= ``min_clicks``. ``target_iou`` 1.01 never stops (FCFI's fixed 20 clicks). With
``boundary_metrics`` the boundary IoU and ASSD of each mask are recorded too (FCFI's mBIoU@k and
ASSD@k, :mod:`iseg.interaction.boundary_metrics`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iseg.interaction.boundary_metrics import DEFAULT_DILATION_RATIO, BoundaryMetrics, summarize_boundary
from iseg.interaction.clicks import Click
from iseg.interaction.metrics import iou_counts, iou_from_counts, noc_thresholds, summarize
from iseg.interaction.next_click import Clicker

Predict = Callable[[list[Click]], np.ndarray]


@dataclass
class SampleResult:
    """Clicks made, IoU after each (float32) and the (intersection, union) counts behind it (K, 2);
    boundary IoU and ASSD after each (float32) when they were computed, else None."""

    clicks: list[Click]
    ious: np.ndarray
    inter_union: np.ndarray
    bious: np.ndarray | None = None
    assds: np.ndarray | None = None


@dataclass
class DatasetResult:
    """Per-sample results, the metric summary and the wall time of the whole loop."""

    samples: list[SampleResult]
    summary: dict[str, float]
    seconds: float
    num_clicks: int = field(init=False)

    def __post_init__(self) -> None:
        self.num_clicks = sum(len(s.ious) for s in self.samples)

    @property
    def seconds_per_click(self) -> float:
        """SPC as the reference reports it: total loop time over clicks actually evaluated."""
        return self.seconds / max(self.num_clicks, 1)


def evaluate_sample(
    predict: Predict,
    gt: np.ndarray,
    max_clicks: int = 20,
    target_iou: float = 0.90,
    min_clicks: int = 1,
    pred_thr: float = 0.49,
    boundary_metrics: bool = False,
    dilation_ratio: float = DEFAULT_DILATION_RATIO,
) -> SampleResult:
    """Run the protocol on one sample; ``predict(clicks)`` gets all clicks so far, returns (H, W) probs.

    The predictor is stateful across the calls of one sample (previous mask, zoom-in ROI); a new
    one is needed per sample. ``boundary_metrics`` adds boundary IoU (band width ``dilation_ratio``
    of the image diagonal) and ASSD per click.
    """
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be >= 1, got {max_clicks}")
    clicker = Clicker(gt)
    gt = np.asarray(gt)
    boundary = BoundaryMetrics(gt, dilation_ratio) if boundary_metrics else None
    pred_mask = np.zeros(clicker.shape, dtype=bool)
    ious: list[float] = []
    counts: list[tuple[int, int]] = []
    bious: list[float] = []
    assds: list[float] = []
    for k in range(1, max_clicks + 1):
        clicker.make_next_click(pred_mask)
        probs = np.asarray(predict(list(clicker.clicks)))
        if probs.shape != clicker.shape:
            raise ValueError(f"predict returned shape {probs.shape}, expected the gt shape {clicker.shape}")
        pred_mask = probs > pred_thr
        intersection, union = iou_counts(pred_mask, gt)
        value = iou_from_counts(intersection, union)
        ious.append(value)
        counts.append((intersection, union))
        if boundary is not None:
            bious.append(boundary.boundary_iou(pred_mask))
            assds.append(boundary.assd(pred_mask))
        if value >= target_iou and k >= min_clicks:
            break
    result = SampleResult(list(clicker.clicks), np.array(ious, dtype=np.float32), np.array(counts, dtype=np.int64))
    if boundary is not None:
        result.bious, result.assds = np.array(bious, dtype=np.float32), np.array(assds, dtype=np.float32)
    return result


def summarize_samples(
    samples: Sequence[SampleResult], thresholds: Sequence[float], max_clicks: int
) -> dict[str, float]:
    """NoC/NoF/mIoU@k of the samples, plus mBIoU@k and ASSD@k when every sample has them."""
    summary = summarize([s.ious for s in samples], thresholds, max_clicks)
    with_boundary = [s.bious is not None for s in samples]
    if all(with_boundary):
        summary.update(summarize_boundary([s.bious for s in samples], [s.assds for s in samples]))
    elif any(with_boundary):
        raise ValueError(f"boundary metrics exist for {sum(with_boundary)} of {len(samples)} samples only")
    return summary


def evaluate_dataset(
    samples: Iterable[tuple[Any, np.ndarray]],
    make_predict: Callable[[Any], Predict],
    max_clicks: int = 20,
    target_iou: float = 0.90,
    min_clicks: int = 1,
    pred_thr: float = 0.49,
    thresholds: Sequence[float] | None = None,
    boundary_metrics: bool = False,
    dilation_ratio: float = DEFAULT_DILATION_RATIO,
) -> DatasetResult:
    """Evaluate (image, gt) pairs; ``make_predict(image)`` builds a fresh predictor per sample.

    ``thresholds`` default to the reference's for ``target_iou`` (see :func:`noc_thresholds`).
    """
    if thresholds is None:
        thresholds = noc_thresholds(target_iou)
    start = time.perf_counter()
    results = [
        evaluate_sample(
            make_predict(image), gt, max_clicks, target_iou, min_clicks, pred_thr, boundary_metrics, dilation_ratio
        )
        for image, gt in samples
    ]
    seconds = time.perf_counter() - start
    if not results:
        raise ValueError("samples is empty: nothing to evaluate")
    return DatasetResult(results, summarize_samples(results, thresholds, max_clicks), seconds)
