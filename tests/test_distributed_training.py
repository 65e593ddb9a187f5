"""Multi-process training: `trainer=ddp` on 2 CPU processes (gloo) over the synthetic data."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, TINY_OVERRIDES

pytestmark = pytest.mark.slow


def test_ddp_two_cpu_processes(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    overrides = [o for o in TINY_OVERRIDES if not o.startswith("trainer.accelerator")]
    command = [
        sys.executable, "train.py", *overrides,
        "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
        "trainer.channels_last=false", "trainer.benchmark=null", "trainer.max_epochs=2",
        "data.batch_size=4", "data.train_dataset.epoch_len=8", "model.protocol_samples=3",
        f"hydra.run.dir={tmp_path}",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

    finished = dict(re.findall(r"rank (\d)/2 finished: epoch \d+, global step (\d+)", output))
    assert set(finished) == {"0", "1"}, output[-4000:]
    assert finished["0"] == finished["1"] == "4"  # 8 samples / (2 per rank) = 2 steps per epoch, 2 epochs

    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert checkpoints == ["epoch_001.ckpt", "last.ckpt"] or checkpoints == ["epoch_000.ckpt", "last.ckpt"], checkpoints
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["global_step"] == 4
    assert len(list(tmp_path.glob("csv/version_*/metrics.csv"))) == 1
    logs = sorted(p.name for p in tmp_path.glob("*.log"))
    assert logs == ["train.log"], logs
    assert "rank 0/2 finished" in (tmp_path / "train.log").read_text()
    assert "rank 1/2 finished" not in (tmp_path / "train.log").read_text()
