"""Forte et al.'s evaluation end to end: predictor=forte composes its robot, view and protocol; the
predictor forces clicks and keeps undo exact; evaluate.py runs the stand-in InterSegSynthFT.pth on
real GrabCut images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from iseg.evaluation.runner import compose_eval_config
from iseg.inference.forte_demo import ForteDemoView
from iseg.inference.predictor import Predictor
from iseg.interaction.forte_robot import ForteClickRobot, forte_next_click
from iseg.interaction.prompts import Click
from iseg.models.forte import ForteNet
from tests.conftest import ROOT, require_shared_dataset
from tests.golden import fill_rule_state_dict, load_spec
from tests.test_protocol import read_grabcut_mask


def test_predictor_forte_composes_its_robot_view_and_protocol() -> None:
    from hydra.utils import instantiate

    cfg = compose_eval_config(["predictor=forte"])
    assert isinstance(instantiate(cfg.robot), ForteClickRobot)
    assert cfg.protocol.target_iou == 1.01 and cfg.protocol.pred_thr == pytest.approx(0.5, abs=1e-7)
    assert list(cfg.predictor.views) == ["forte_demo"] and list(cfg.predictor_networks) == ["ForteNet"]
    assert instantiate(compose_eval_config([]).robot).__class__.__name__ == "ClickRobot"  # others unchanged


def test_predictor_forces_clicks_at_image_size_and_undo_is_exact(one_thread: None) -> None:
    torch.manual_seed(0)
    net = ForteNet()
    predictor = Predictor(net, views={"forte_demo": ForteDemoView()}, pred_thr=0.49999997)
    image = (np.random.default_rng(0).random((37, 45, 3)) * 255).astype(np.uint8)  # -> a 64x64 network frame
    predictor.set_image(image)
    first = predictor.add(Click(10, 12, True)).copy()
    assert first.shape == (37, 45) and first[10, 12] == 1.0
    second = predictor.add(Click(30, 40, False))
    assert second[30, 40] == 0.0 and second[10, 12] == 1.0
    # what is left is the region of alpha > 0.5 around the foreground click, zero elsewhere
    _, labels = cv2.connectedComponents((second > 0.5).astype(np.uint8), connectivity=8)
    assert set(np.unique(labels[second > 0])) == {labels[10, 12]}
    np.testing.assert_array_equal(predictor.undo(), first)


@pytest.mark.slow
def test_evaluate_py_runs_the_official_checkpoint_on_grabcut(tmp_path: Path) -> None:
    root = require_shared_dataset("GrabCut")
    checkpoint = tmp_path / "InterSegSynthFT.pth"
    torch.save(fill_rule_state_dict(load_spec("forte_resnet50")), checkpoint)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "evaluate.py", f"checkpoint={checkpoint}", "data=grabcut", f"data.grabcut.root={root}",
        "predictor=forte", "protocol.max_clicks=2", "max_samples=2", "threads=1", "num_examples=0",
        f"hydra.run.dir={tmp_path / 'out'}",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "ablation" not in result.stdout + result.stderr and "NoC@90" in result.stdout
    document = json.loads((tmp_path / "out" / "results.json").read_text())["datasets"]["grabcut"]
    assert document["predictor"]["views"]["forte_demo"]["output_interpolation"] == "bilinear"
    assert len(document["samples"]) == 2
    for sample in document["samples"]:
        gt = read_grabcut_mask(root / "boundary_GT" / (Path(sample["name"]).stem + ".bmp"))
        first = forte_next_click(gt, np.zeros(gt.shape, bool))  # the first click sees an empty mask
        assert sample["clicks"][0] == [first.y, first.x, first.is_positive]
        assert len(sample["ious"]) == 2  # all clicks, no early stop
