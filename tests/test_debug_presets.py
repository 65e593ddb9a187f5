"""debug= presets: every preset composes as documented, and overfitting a batch drives the loss down and the IoU up."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from iseg.training.run import train
from tests.conftest import compose_train_config


def _epoch_values(output_dir: Path, name: str) -> list[float]:
    (file,) = output_dir.glob("csv/version_*/metrics.csv")
    with file.open() as f:
        return [float(row[name]) for row in csv.DictReader(f) if row.get(name)]


@pytest.mark.parametrize(
    "preset, expected",
    [
        ("fdr", {"fast_dev_run": True}),
        ("overfit", {"overfit_batches": 3, "max_epochs": 20}),
        ("limit", {"limit_train_batches": 0.01, "limit_val_batches": 0.05, "max_epochs": 3}),
        ("profiler", {"profiler": "simple", "max_epochs": 1}),
    ],
)
def test_presets_compose(tmp_path, preset, expected):
    cfg = compose_train_config(tmp_path, [f"debug={preset}"], tiny=False)
    assert cfg.task_name == "debug" and cfg.trainer.accelerator == "cpu" and cfg.trainer.detect_anomaly
    assert cfg.data.num_workers == 0 and list(cfg.logger) == ["csv"] and not cfg.validate_before_training
    for key, value in expected.items():
        assert cfg.trainer[key] == value, key


@pytest.mark.slow
def test_overfitting_one_batch_lowers_the_loss_and_raises_the_iou(tmp_path):
    """From scratch on one batch of larger objects (25 steps): NFL + aux loss 1.0 -> 0.39, IoU 0.04 -> 0.43."""
    cfg = compose_train_config(tmp_path, [
        "debug=overfit", "trainer.overfit_batches=1", "trainer.max_epochs=25", "model.optimizer.lr=3e-3",
        "data.train_dataset.source.object_scale=[0.45,0.5]",
        "model.max_num_next_clicks=0", "trainer.check_val_every_n_epoch=100",
        "trainer.detect_anomaly=false", "optimized_metric=null",
    ])
    train(cfg)
    losses, ious = _epoch_values(tmp_path, "train/loss_epoch"), _epoch_values(tmp_path, "train/iou_epoch")
    assert len(losses) == len(ious) == 25
    first, last = slice(0, 3), slice(-3, None)  # means of the first and the last three epochs
    assert _mean(losses[last]) < 0.5 * _mean(losses[first]), losses
    assert _mean(ious[last]) > _mean(ious[first]) + 0.25, ious


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
