"""Callbacks of the training runs."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.callbacks import ModelSummary as LightningModelSummary
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.model_summary import get_human_readable_count

from iseg.evaluation.visualize import draw_clicks

log = logging.getLogger(__name__)


class ModelSummary(LightningModelSummary):
    """The model in one line at the start of fit: its top-level modules with their parameter
    counts, the totals and the size (Lightning's table has FLOP and mode columns that say
    nothing here). Set ``trainer.enable_model_summary: false`` with it, so Lightning adds no other."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        columns = dict(summary_data)
        modules = ", ".join(
            f"{name} ({kind}, {params.strip()})"
            for name, kind, params in zip(columns.get("Name", []), columns.get("Type", []), columns.get("Params", []))
        )
        frozen = total_parameters - trainable_parameters
        log.info(
            "model: %s; %s parameters%s, %.1f MB",
            modules or "no submodules",
            get_human_readable_count(int(total_parameters)).strip(),
            f" ({get_human_readable_count(int(frozen)).strip()} frozen)" if frozen else "",
            model_size,
        )


class LogInteractionSamples(Callback):
    """After each validation, send a few protocol samples to W&B: the image with its clicks, the
    ground truth and the final prediction as mask layers (uint8 class ids, as W&B expects)."""

    def __init__(self, max_samples: int = 4, pred_thr: float = 0.49):
        self.max_samples = max_samples
        self.pred_thr = pred_thr

    @rank_zero_only
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        samples = getattr(pl_module, "logged_samples", [])[: self.max_samples]
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not samples or not loggers or trainer.sanity_checking:
            return
        images, masks, captions = [], [], []
        class_labels = {0: "background", 1: "object", 2: "ignore"}
        for sample in samples:
            gt = sample["gt"]
            gt_ids = np.where(gt == -1, 2, gt == 1).astype(np.uint8)
            pred_ids = (sample["probs"] > self.pred_thr).astype(np.uint8)
            images.append(draw_clicks(sample["image"], sample["clicks"]))
            masks.append(
                {
                    "ground_truth": {"mask_data": gt_ids, "class_labels": class_labels},
                    "prediction": {"mask_data": pred_ids, "class_labels": class_labels},
                }
            )
            captions.append(f"{sample['name']}: {len(sample['clicks'])} clicks")
        for logger in loggers:
            logger.log_image("val/samples", images, step=trainer.global_step, masks=masks, caption=captions)
