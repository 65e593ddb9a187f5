"""W&B logging offline: the run files, and sample images with ground truth, prediction and clicks."""

from __future__ import annotations

import json

import pytest

from iseg.training.run import train
from tests.conftest import compose_train_config

pytestmark = pytest.mark.slow


def test_wandb_offline_run_writes_files_and_sample_images(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = compose_train_config(tmp_path, ["logger=wandb", "tags=[test]"])
    train(cfg)

    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    run = runs[0]
    assert list(run.glob("run-*.wandb")), "no W&B event file"
    images = list(run.glob("files/media/images/val/samples_*.png"))
    assert len(images) >= 2, sorted(p.name for p in run.rglob("*"))
    masks = list(run.glob("files/media/images/mask/*.png"))
    assert len(masks) >= 2 * len(images), "ground-truth and prediction mask layers expected per image"
    config = (run / "files" / "config.yaml").read_text()
    assert "ritm_hrnet18s" in config or "HRNetModel" in config
    summary = json.loads((run / "files" / "wandb-summary.json").read_text())
    assert "val/noc90" in summary and "train/loss_epoch" in summary
