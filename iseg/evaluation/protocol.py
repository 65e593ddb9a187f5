"""The interactive evaluation protocol: one loop for evaluate.py, validation and the benchmarks.

One sample: for k = 1..max_clicks the robot gives a round of prompts from the previous binary mask
(all false before the first one): one click under the standard robot, every scribble of the round
under the scribble robot (:func:`~iseg.interaction.robots.next_round`). The predictor adds them one
by one and ``commit()``s the round; the mask is ``probs > pred_thr`` after the round's last prompt
and its IoU is recorded (a round without prompts, nothing left to correct, keeps the mask). The loop
stops after round k when IoU >= ``target_iou`` (in float64) and k >= ``min_clicks``. ``unit`` names
a step in the metrics: ``click`` (NoC@t, seconds per click) or ``round`` (NoS@t: scribble rounds to
reach t, capped at ``max_clicks``; seconds per round). ``target_iou`` 1.01 never stops (FCFI's fixed 20 clicks). With
``boundary_metrics`` the boundary IoU and ASSD of each mask are recorded too (FCFI's mBIoU@k and
ASSD@k, :mod:`iseg.interaction.boundary_metrics`).

The settings are one object, :class:`ProtocolConfig` (its defaults are RITM's protocol; the
configs under conf/ only change them). :func:`run_protocol` runs a sequence of samples, sharded over
the ranks of a process group and gathered back in sample order, so any number of processes gives
the per-sample results of one.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from iseg.evaluation.distributed import gather_objects, shard_for_rank
from iseg.interaction.boundary_metrics import DEFAULT_DILATION_RATIO, BoundaryMetrics, summarize_boundary
from iseg.interaction.metrics import iou_counts, iou_from_counts, noc_thresholds, summarize, threshold_name
from iseg.interaction.prompts import Prompt
from iseg.interaction.robots import ClickRobot, Robot, next_round

COUNT_NAMES = {"click": "NoC", "round": "NoS"}
"""The metric name of each step unit: clicks to reach an IoU, or scribble rounds."""


@dataclass(frozen=True)
class ProtocolConfig:
    """Settings of the protocol loop; ``thresholds`` None means the reference's for ``target_iou``."""

    max_clicks: int = 20
    target_iou: float = 0.90
    min_clicks: int = 1
    pred_thr: float = 0.49
    boundary_metrics: bool = False
    dilation_ratio: float = DEFAULT_DILATION_RATIO
    thresholds: tuple[float, ...] | None = None
    unit: str = "click"
    prob_thresholds: tuple[float, ...] | None = None
    """Also record the IoU of ``probs > t`` for each t after every prompt (IOG's 0.1..0.9 table)."""

    def __post_init__(self) -> None:
        if self.unit not in COUNT_NAMES:
            raise ValueError(f"protocol unit must be one of {sorted(COUNT_NAMES)}, got {self.unit!r}")
        if self.max_clicks < 1:
            raise ValueError(f"max_clicks must be >= 1, got {self.max_clicks}")
        if self.min_clicks < 1:
            raise ValueError(f"min_clicks must be >= 1, got {self.min_clicks}")
        if self.thresholds is not None:
            object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        if self.prob_thresholds is not None:
            object.__setattr__(self, "prob_thresholds", tuple(float(t) for t in self.prob_thresholds))
            if not all(0.0 <= t < 1.0 for t in self.prob_thresholds):
                raise ValueError(f"prob_thresholds must lie in [0, 1), got {list(self.prob_thresholds)}")

    @property
    def count_name(self) -> str:
        """``NoC`` for clicks, ``NoS`` for scribble rounds."""
        return COUNT_NAMES[self.unit]

    @property
    def noc_thresholds(self) -> list[float]:
        return list(self.thresholds) if self.thresholds is not None else noc_thresholds(self.target_iou)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for reports and loggers."""
        return {
            "max_clicks": self.max_clicks,
            "target_iou": self.target_iou,
            "min_clicks": self.min_clicks,
            "pred_thr": self.pred_thr,
            "boundary_metrics": bool(self.boundary_metrics),
            "dilation_ratio": self.dilation_ratio,
            "thresholds": self.noc_thresholds,
            "unit": self.unit,
            "count_name": self.count_name,
            **({"prob_thresholds": list(self.prob_thresholds)} if self.prob_thresholds is not None else {}),
        }


class Interactive(Protocol):
    """What the loop needs of a predictor: ``set_image`` per sample, ``add`` per prompt, ``commit`` per round."""

    def set_image(self, image: Any) -> None: ...

    def add(self, prompt: Prompt) -> np.ndarray: ...

    def commit(self) -> Any: ...


class ProtocolSample(Protocol):
    name: str
    image: Any
    gt: np.ndarray


@dataclass(frozen=True)
class Sample:
    """A plain protocol sample (evaluation sets give their own objects with the same fields)."""

    name: str
    image: Any
    gt: np.ndarray


@dataclass
class SampleResult:
    """Prompts given (``clicks``: clicks under the standard robot), IoU after each round (float32) and
    the (intersection, union) counts behind it (K, 2); boundary IoU and ASSD after each (float32)
    when they were computed, else None. ``round_sizes``: prompts per round (None: one each)."""

    clicks: list[Prompt]
    ious: np.ndarray
    inter_union: np.ndarray
    bious: np.ndarray | None = None
    assds: np.ndarray | None = None
    round_sizes: list[int] | None = None

    def rounds(self) -> list[list[Prompt]]:
        """The prompts grouped by round."""
        sizes = self.round_sizes if self.round_sizes is not None else [1] * len(self.clicks)
        ends = np.cumsum([0, *sizes])
        return [list(self.clicks[a:b]) for a, b in itertools.pairwise(ends)]
    threshold_ious: np.ndarray | None = None
    """(K, T) float32: IoU of ``probs > t`` for each of the protocol's ``prob_thresholds``, after each prompt."""


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
    predictor: Interactive,
    gt: np.ndarray,
    settings: ProtocolConfig | None = None,
    robot: Robot | None = None,
) -> SampleResult:
    """Run the protocol on one sample whose image the predictor has already (``set_image``).

    The predictor is stateful across the prompts of one sample (previous mask, zoom-in ROI).
    ``robot`` defaults to :class:`~iseg.interaction.robots.ClickRobot`.
    """
    settings = settings or ProtocolConfig()
    robot = robot if robot is not None else ClickRobot()
    robot.start(gt)
    gt = np.asarray(gt)
    boundary = BoundaryMetrics(gt, settings.dilation_ratio) if settings.boundary_metrics else None
    pred_mask = np.zeros(gt.shape, dtype=bool)
    ious: list[float] = []
    counts: list[tuple[int, int]] = []
    bious: list[float] = []
    assds: list[float] = []
    sizes: list[int] = []
    threshold_ious: list[list[float]] = []
    for k in range(1, settings.max_clicks + 1):
        prompts = next_round(robot, pred_mask)
        for prompt in prompts:
            probs = np.asarray(predictor.add(prompt))
            if probs.shape != gt.shape:
                raise ValueError(f"predict returned shape {probs.shape}, expected the gt shape {gt.shape}")
        if prompts:
            predictor.commit()
            pred_mask = probs > settings.pred_thr
        sizes.append(len(prompts))
        intersection, union = iou_counts(pred_mask, gt)
        value = iou_from_counts(intersection, union)
        ious.append(value)
        counts.append((intersection, union))
        if settings.prob_thresholds is not None:
            threshold_ious.append([iou_from_counts(*iou_counts(probs > t, gt)) for t in settings.prob_thresholds])
        if boundary is not None:
            bious.append(boundary.boundary_iou(pred_mask))
            assds.append(boundary.assd(pred_mask))
        if value >= settings.target_iou and k >= settings.min_clicks:
            break
    result = SampleResult(robot.history, np.array(ious, dtype=np.float32), np.array(counts, dtype=np.int64))
    if settings.unit == "round" or any(size != 1 for size in sizes):
        result.round_sizes = sizes
    if boundary is not None:
        result.bious, result.assds = np.array(bious, dtype=np.float32), np.array(assds, dtype=np.float32)
    if settings.prob_thresholds is not None:
        result.threshold_ious = np.array(threshold_ious, dtype=np.float32).reshape(len(ious), -1)
    return result


def summarize_samples(
    samples: Sequence[SampleResult],
    thresholds: Sequence[float],
    max_clicks: int,
    count_name: str = "NoC",
    prob_thresholds: Sequence[float] | None = None,
) -> dict[str, float]:
    """NoC (or NoS)/NoF/mIoU@k of the samples, plus mBIoU@k and ASSD@k when every sample has them, plus
    ``mIoU@k/th<t>`` (mean IoU of ``probs > t`` after prompt k, k = 1..3) with ``prob_thresholds``."""
    summary = summarize([s.ious for s in samples], thresholds, max_clicks, count_name=count_name)
    if prob_thresholds is not None and all(s.threshold_ious is not None for s in samples):
        shortest = min(len(s.threshold_ious) for s in samples)
        for k in range(1, min(shortest, 3) + 1):
            means = np.mean([s.threshold_ious[k - 1] for s in samples], axis=0)
            for t, value in zip(prob_thresholds, means):
                summary[f"mIoU@{k}/th{threshold_name(t)}"] = float(value)
    with_boundary = [s.bious is not None for s in samples]
    if all(with_boundary):
        summary.update(summarize_boundary([s.bious for s in samples], [s.assds for s in samples]))
    elif any(with_boundary):
        raise ValueError(f"boundary metrics exist for {sum(with_boundary)} of {len(samples)} samples only")
    return summary


@dataclass
class SampleRecord:
    """One evaluated sample: its position in the sequence, its name and the protocol result
    (``object_index``: the object's position in its image under the multi-object protocol)."""

    index: int
    name: str
    result: SampleResult
    object_index: int = 0


@dataclass
class ProtocolRun:
    """Every sample's record in sample order (all ranks) and the loop seconds summed over ranks."""

    records: list[SampleRecord]
    seconds: float
    settings: ProtocolConfig

    @property
    def samples(self) -> list[SampleResult]:
        return [record.result for record in self.records]

    def dataset_result(self) -> DatasetResult:
        settings = self.settings
        summary = summarize_samples(
            self.samples, settings.noc_thresholds, settings.max_clicks, settings.count_name, settings.prob_thresholds
        )
        return DatasetResult(self.samples, summary, self.seconds)


OnRecord = Callable[[SampleRecord, Any, Interactive], None]
"""Called on this rank after each sample with (record, the sample, the predictor), e.g. to keep pictures."""

SampleEvaluator = Callable[[Any, Any, ProtocolConfig, "Robot | None"], list[tuple[str, SampleResult]]]
"""(predictor, sample, settings, robot) -> (name, result) per object of the sample; shows the image itself."""


def evaluate_one_object(
    predictor: Interactive, sample: ProtocolSample, settings: ProtocolConfig, robot: Robot | None
) -> list[tuple[str, SampleResult]]:
    """The single-object protocol on one sample (``name``, ``image``, ``gt``): the default evaluator."""
    predictor.set_image(sample.image)
    return [(sample.name, evaluate_sample(predictor, sample.gt, settings, robot))]


def run_protocol(
    predictor: Interactive,
    samples: Sequence[ProtocolSample],
    settings: ProtocolConfig | None = None,
    robot: Robot | None = None,
    *,
    num_samples: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    on_record: OnRecord | None = None,
    evaluator: SampleEvaluator = evaluate_one_object,
) -> ProtocolRun:
    """The protocol on the first ``num_samples`` of ``samples`` (all by default), this rank's share.

    ``samples[i]`` has ``name``, ``image`` and ``gt`` (or what ``evaluator`` reads, e.g. the
    multi-object protocol's label maps, :mod:`iseg.evaluation.multi_object`). Under a process group
    every rank calls this with the same arguments; the records are gathered on every rank. A failure
    on one rank is reported on all of them (none waits for it forever).
    """
    settings = settings or ProtocolConfig()
    total = len(samples) if num_samples is None else min(num_samples, len(samples))
    if total == 0:
        raise ValueError("samples is empty: nothing to evaluate")
    records: list[SampleRecord] = []
    failure: BaseException | None = None
    start = time.perf_counter()
    try:
        for index in shard_for_rank(total, rank, world_size):
            sample = samples[index]
            for object_index, (name, result) in enumerate(evaluator(predictor, sample, settings, robot)):
                record = SampleRecord(index, name, result, object_index)
                records.append(record)
                if on_record is not None:
                    on_record(record, sample, predictor)
    except Exception as error:  # reported to every rank below
        failure = error
    seconds = time.perf_counter() - start
    message = None if failure is None else f"{type(failure).__name__}: {failure}"
    shards = gather_objects([(rank, seconds, message, records)])
    if failure is not None:
        raise failure
    failed = [(r, m) for r, _, m, _ in shards if m is not None]
    if failed:
        raise RuntimeError(f"protocol run failed on rank {failed[0][0]}: {failed[0][1]}")
    gathered = sorted((r for *_, part in shards for r in part), key=lambda r: (r.index, r.object_index))
    if sorted({record.index for record in gathered}) != list(range(total)):
        raise RuntimeError(f"gathered sample indices do not cover 0..{total - 1}")
    return ProtocolRun(gathered, sum(s for _, s, _, _ in shards), settings)
