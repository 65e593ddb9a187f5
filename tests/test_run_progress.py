"""What a training run shows: log lines per epoch and per protocol run when the output is not a
terminal, a protocol task in the Rich bar in a terminal, a tiny protocol under fast_dev_run, and a
logging interval that fits short epochs."""

from __future__ import annotations

import csv
import io
import logging
import re
import warnings

import pytest
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import CustomProgress
from lightning.pytorch.loggers import CSVLogger
from rich.console import Console

from iseg.training.progress import ProgressBar, ProgressLog
from iseg.training.run import train
from iseg.training.trainer import Trainer
from tests.conftest import compose_train_config


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "iseg.progress"]


def test_log_lines_per_epoch_and_protocol_run_without_a_terminal(tmp_path, caplog):
    cfg = compose_train_config(
        tmp_path,
        ["trainer.max_epochs=2", "trainer.enable_progress_bar=true", "trainer.progress_interval=1e-9",
         "trainer.log_every_n_steps=10", "validate_before_training=true"],
    )
    with caplog.at_level(logging.INFO, logger="iseg.progress"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(cfg)
    lines = _lines(caplog)
    epochs = [line for line in lines if line.startswith("epoch ") and "step" not in line]
    assert len(epochs) == 2, lines
    assert re.fullmatch(
        r"epoch 2/2: train/loss [\d.]+, val/loss [\d.]+, val/iou [\d.]+, val/noc85 [\d.]+, val/noc90 [\d.]+ \(\d+ s\)", epochs[1]
    ), epochs
    protocol = [line for line in lines if line.startswith("validation protocol") and "NoC" in line]
    # before training, after each epoch, and the trained network at the end
    assert len(protocol) == 4, lines
    assert re.fullmatch(r"validation protocol, epoch 1: 2/2 samples, NoC@85 [\d.]+, NoC@90 [\d.]+ \(\d+ s\)", protocol[1])
    assert any(re.fullmatch(r"epoch 1/2: step 1/2, train/loss [\d.]+, [\d.]+ it/s", line) for line in lines), lines
    assert any(re.fullmatch(r"validation protocol.*: 1/2 samples \(\d+ s\)", line) for line in lines), lines
    # epochs of 2 batches with log_every_n_steps=10: steps are still logged, without Lightning's warning
    assert not [w for w in caught if "smaller than the logging interval" in str(w.message)]
    with next(tmp_path.glob("csv/version_*/metrics.csv")).open() as f:
        steps = [row for row in csv.DictReader(f) if row.get("train/loss_step")]
    assert len(steps) == 2  # one per epoch (log_every_n_steps became the epoch length, 2)


def test_fast_dev_run_runs_a_tiny_protocol(tmp_path, caplog):
    cfg = compose_train_config(
        tmp_path, ["trainer.fast_dev_run=true", "model.protocol_samples=4", "model.protocol.max_clicks=20"]
    )
    with caplog.at_level(logging.INFO, logger="iseg.progress"):
        value = train(cfg)
    protocol = [line for line in _lines(caplog) if line.startswith("validation protocol")]
    assert len(protocol) == 1 and ": 1/1 samples" in protocol[0], protocol
    assert 1.0 <= value <= 2.0  # NoC over at most 2 clicks


def test_no_bar_when_the_output_is_not_a_terminal(monkeypatch, tmp_path):
    monkeypatch.setattr("iseg.training.trainer.interactive_output", lambda: False)
    trainer = Trainer(enable_progress_bar=True, logger=False, default_root_dir=tmp_path)
    assert trainer.progress_bar_callback is None
    assert any(isinstance(cb, ProgressLog) for cb in trainer.callbacks)


def test_bar_in_a_terminal_shows_no_version_number(monkeypatch, tmp_path):
    monkeypatch.setattr("iseg.training.trainer.interactive_output", lambda: True)
    trainer = Trainer(enable_progress_bar=True, logger=CSVLogger(tmp_path), default_root_dir=tmp_path)
    assert isinstance(trainer.progress_bar_callback, ProgressBar)
    assert "v_num" not in trainer.progress_bar_callback.get_metrics(trainer, None)


class _Trainer:
    """What ProgressLog reads of a trainer, with a live Rich bar."""

    is_global_zero = True
    world_size = 1
    current_epoch = 0

    def __init__(self, bar):
        self.progress_bar_callback = bar
        self.state = type("State", (), {"fn": "fit"})()


def test_protocol_task_in_the_rich_bar(monkeypatch, caplog):
    out = io.StringIO()
    bar = RichProgressBar()
    bar.progress = CustomProgress(console=Console(file=out, force_terminal=True, width=120), auto_refresh=False)
    bar._progress_stopped = False
    monkeypatch.setattr(RichProgressBar, "is_enabled", property(lambda self: True))
    trainer = _Trainer(bar)
    log = ProgressLog(interval=0)
    log.on_protocol_start(trainer, None, 3)
    (task,) = bar.progress.tasks
    assert task.description == "Protocol" and task.total == 3
    log.on_protocol_record(trainer, None, 2, 3, None)
    assert bar.progress.tasks[0].completed == 2
    with caplog.at_level(logging.INFO, logger="iseg.progress"):
        log.on_protocol_end(trainer, None, {"noc85": 2.5, "noc90": 3.0, "miou1": 0.5}, 3, 3)
    assert not bar.progress.tasks
    assert "validation protocol, epoch 1: 3/3 samples, NoC@85 2.50, NoC@90 3.00" in out.getvalue()


@pytest.mark.parametrize("batches, expected", [(2, 2), (100, 10), (float("inf"), 10)])
def test_log_interval_fits_short_epochs(tmp_path, batches, expected):
    trainer = Trainer(enable_progress_bar=False, logger=False, default_root_dir=tmp_path, log_every_n_steps=10)
    trainer.fit_loop.max_batches = batches
    assert trainer.log_every_n_steps == expected
