"""Sending an evaluation to the configured Lightning loggers (rank 0 only).

Every logger gets the config and the flat metrics (``<set>/NoC@90``, ``<set>/SPC``, and with
boundary metrics ``<set>/mBIoU@k``, ``<set>/ASSD@k``); a W&B logger also gets the table (with the
boundary columns when computed), the IoU-vs-clicks curve (picture and values) and the example
pictures with their clicks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from iseg.evaluation.report import BOUNDARY_COLUMNS, TABLE_COLUMNS, ReportFiles, has_boundary_metrics
from iseg.evaluation.visualize import interaction_panel

if TYPE_CHECKING:
    from lightning.pytorch.loggers import Logger

    from iseg.evaluation.runner import DatasetEvaluation


def flat_metrics(evaluations: Sequence[DatasetEvaluation]) -> dict[str, float]:
    """``<set>/<metric>`` for every summary metric, plus samples, clicks and seconds per click."""
    metrics: dict[str, float] = {}
    for evaluation in evaluations:
        for name, value in evaluation.summary.items():
            metrics[f"{evaluation.key}/{name}"] = float(value)
        metrics[f"{evaluation.key}/samples"] = float(len(evaluation.records))
        metrics[f"{evaluation.key}/excluded"] = float(len(evaluation.exclusions))
        metrics[f"{evaluation.key}/clicks"] = float(evaluation.result.num_clicks)
        metrics[f"{evaluation.key}/SPC"] = float(evaluation.result.seconds_per_click)
    return metrics


def log_evaluations(
    loggers: Sequence[Logger],
    evaluations: Sequence[DatasetEvaluation],
    files: ReportFiles,
    config: Mapping[str, Any] | None = None,
) -> None:
    """Log config and metrics to every logger and the media to the W&B ones, then flush them."""
    if not loggers:
        return
    from lightning.pytorch.loggers import WandbLogger

    metrics = flat_metrics(evaluations)
    for logger in loggers:
        if config is not None:
            logger.log_hyperparams(dict(config))
        logger.log_metrics(metrics)
        if isinstance(logger, WandbLogger):
            _log_wandb_media(logger, evaluations, files)
        logger.save()
        logger.finalize("success")


def _log_wandb_media(logger: WandbLogger, evaluations: Sequence[DatasetEvaluation], files: ReportFiles) -> None:
    metric_columns = [*TABLE_COLUMNS, *(BOUNDARY_COLUMNS if has_boundary_metrics(evaluations) else ())]
    columns = ["dataset", "samples", *metric_columns, "SPC"]
    rows = [
        [e.key, len(e.records), *(e.summary.get(c) for c in metric_columns), e.result.seconds_per_click]
        for e in evaluations
    ]
    logger.log_table("eval/metrics", columns=columns, data=rows)
    curve_rows = [[key, k, float(v)] for key, curve in files.curves.items() for k, v in enumerate(curve, 1)]
    logger.log_table("eval/iou_curve_values", columns=["dataset", "click", "mean_iou"], data=curve_rows)
    logger.log_image("eval/iou_curve", [str(files.curve_png)])
    exclusions = [[e.key, name, reason] for e in evaluations for name, reason in e.exclusions]
    if exclusions:
        logger.log_table("eval/exclusions", columns=["dataset", "sample", "reason"], data=exclusions)
    for evaluation in evaluations:
        if not evaluation.examples:
            continue
        panels = [
            interaction_panel(x.image, x.gt, x.probs, x.clicks, evaluation.protocol["pred_thr"])
            for x in evaluation.examples
        ]
        captions = [
            f"{x.name}: {len(x.clicks)} clicks, IoU {_final_iou(evaluation, x.index):.3f}" for x in evaluation.examples
        ]
        logger.log_image(f"eval/{evaluation.key}/examples", panels, caption=captions)


def _final_iou(evaluation: DatasetEvaluation, index: int) -> float:
    record = next(r for r in evaluation.records if r.index == index)
    return float(record.result.ious[-1])
