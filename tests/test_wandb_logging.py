"""W&B logging offline: the run files, and sample images with ground truth, prediction and clicks."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

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
    masks = list(run.glob("files/media/images/mask/val/samples_*.mask.png"))
    # mask files are named by their content's hash: identical layers (two empty predictions) share one file
    assert len(images) < len(masks) <= 2 * len(images), sorted(p.name for p in masks)
    for path in masks:
        assert set(np.unique(np.asarray(Image.open(path)))) <= {0, 1, 2}, path
    # wandb 0.31 offline writes no wandb-summary.json: metrics and config are records of the run
    # file, which its service process may still be flushing when finish() returns
    run_file = next(run.glob("run-*.wandb"))
    keys = (b"val/noc90", b"val/miou3", b"train/loss_epoch", b"HRNetModel", b"ground_truth", b"prediction")
    deadline = time.monotonic() + 60
    while not all(key in run_file.read_bytes() for key in keys) and time.monotonic() < deadline:
        time.sleep(0.5)
    for key in keys:
        assert key in run_file.read_bytes(), key
