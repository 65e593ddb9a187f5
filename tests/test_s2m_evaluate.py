"""evaluate.py runs the scribble protocol end to end on real GrabCut images with a stand-in S2M checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
GRABCUT = ROOT.parent / "shared" / "data" / "GrabCut"


@pytest.mark.slow
def test_evaluate_py_runs_scribble_rounds_on_grabcut(tmp_path) -> None:
    if not (GRABCUT / "data_GT").is_dir():
        pytest.skip(f"GrabCut not found at {GRABCUT} (../shared/data beside the repository)")
    from iseg.models.s2m import S2MNet

    torch.manual_seed(0)
    checkpoint = tmp_path / "s2m.pth"
    torch.save(S2MNet().state_dict(), checkpoint)  # the official format: a bare state dict
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "evaluate.py", f"checkpoint={checkpoint}", "robot=scribble", "data=grabcut",
        f"data.grabcut.root={GRABCUT}", "max_samples=2", "protocol.max_clicks=2", "robot.max_strokes=2", "threads=1",
        "num_examples=1", "predictor.views.pad=null", "+predictor.views.limit_size={_target_: iseg.inference.limit_size.LimitLongestSide, max_size: 128}",
        f"hydra.run.dir={tmp_path / 'out'}",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "NoS@85" in result.stdout and "SPR [s]" in result.stdout, result.stdout
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    grabcut = document["datasets"]["grabcut"]
    assert grabcut["num_samples"] == 2 and grabcut["protocol"]["unit"] == "round"
    for sample in grabcut["samples"]:
        assert len(sample["ious"]) == 2 and len(sample["round_sizes"]) == 2 and 1 <= sample["round_sizes"][0] <= 2
        first = sample["clicks"][0]
        assert (first["is_positive"] if isinstance(first, dict) else first[2]) is True  # round 1: on the object
    assert set(grabcut["summary"]) >= {"NoS@85", "NoS@90", "mIoU@1", "mIoU@2"}
    assert list((tmp_path / "out" / "examples" / "grabcut").glob("*.png"))
