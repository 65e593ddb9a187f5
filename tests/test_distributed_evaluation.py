"""Distributed evaluation: 2 CPU processes (Fabric DDP, gloo) give exactly the per-sample results of 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_evaluate import make_folder_set
from tests.test_predictor import _checkpoint

pytestmark = pytest.mark.slow


def _run(checkpoint: Path, data: Path, output: Path, devices: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "evaluate.py", f"checkpoint={checkpoint}", "data=folder", f"data.folder.root={data}",
        "protocol.max_clicks=4", "protocol.target_iou=0.95", "predictor.views.zoom_in.target_size=64", "threads=1",
        f"fabric.devices={devices}", f"fabric.strategy={'ddp' if devices > 1 else 'auto'}", f"hydra.run.dir={output}",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("NoC@90") == 1, "only rank 0 prints the table"
    return json.loads((output / "results.json").read_text())


def test_two_processes_give_the_results_of_one(tmp_path: Path) -> None:
    checkpoint = _checkpoint("v1_override", tmp_path)
    data = make_folder_set(tmp_path / "data", num_images=5)
    single = _run(checkpoint, data, tmp_path / "one", devices=1)
    double = _run(checkpoint, data, tmp_path / "two", devices=2)
    assert single["world_size"] == 1 and double["world_size"] == 2
    one, two = single["datasets"]["folder"], double["datasets"]["folder"]
    assert len(one["samples"]) == 5
    assert two["samples"] == one["samples"]
    assert two["summary"] == one["summary"] and two["exclusions"] == one["exclusions"] != []
    assert sorted(p.name for p in (tmp_path / "two").glob("*.log")) == ["evaluate.log"]
