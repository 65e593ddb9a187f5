"""IOG through the shared protocol: the IOG robot, the box-crop predictor, IoU at IOG's thresholds in
the summary and the table, and evaluate.py with a stand-in official refinement checkpoint on GrabCut."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from iseg.evaluation.protocol import (
    ProtocolConfig,
    Sample,
    evaluate_sample,
    run_protocol,
)
from iseg.evaluation.report import _threshold_table
from iseg.inference.box_crop import BoxCrop
from iseg.inference.predictor import Predictor
from iseg.interaction.iog_robot import IOGRobot
from iseg.interaction.prompts import Click, InsideOutside
from tests.conftest import ROOT, require_shared_dataset
from tests.test_iog_guidance import _GuidanceNet

THRESHOLDS = tuple(np.arange(1, 10) / 10)


def _object() -> np.ndarray:
    gt = np.zeros((40, 60), np.int8)
    gt[10:26, 20:42] = 1
    gt[9, 20:42] = -1
    return gt


def test_robot_then_correction_clicks_and_threshold_ious():
    predictor = Predictor(_GuidanceNet(), views={"box_crop": BoxCrop(size=(32, 32), relax=2)}, pred_thr=0.5)
    predictor.set_image(np.zeros((40, 60, 3), np.uint8))
    gt = _object()
    settings = ProtocolConfig(max_clicks=3, target_iou=1.01, pred_thr=0.5, prob_thresholds=THRESHOLDS)
    result = evaluate_sample(predictor, gt, settings, IOGRobot(size=(32, 32), relax=2))
    first, *clicks = result.clicks
    assert isinstance(first, InsideOutside) and (first.box.y0, first.box.x0, first.box.y1, first.box.x1) == (10, 20, 25, 41)
    assert 10 <= first.inside.y <= 25 and 20 <= first.inside.x <= 41
    assert all(isinstance(c, Click) and c.is_positive for c in clicks)  # the blob is smaller than the object
    assert result.threshold_ious.shape == (3, 9)
    assert result.threshold_ious[:, 4].tolist() == pytest.approx(result.ious.tolist())  # t = 0.5 = pred_thr
    run = run_protocol(predictor, [Sample("a", np.zeros((40, 60, 3), np.uint8), gt)], settings, IOGRobot((32, 32), 2))
    summary = run.dataset_result().summary
    assert summary["mIoU@2/th50"] == pytest.approx(float(result.ious[1])) and "mIoU@3/th10" in summary
    assert ProtocolConfig(prob_thresholds=THRESHOLDS).as_dict()["prob_thresholds"][0] == 0.1
    with pytest.raises(ValueError, match="prob_thresholds must lie in"):
        ProtocolConfig(prob_thresholds=(0.5, 1.5))

    class Evaluation:
        key = "toy"

    Evaluation.summary = summary
    table = "\n".join(_threshold_table([Evaluation()]))
    assert "IoU@0.1" in table and "IoU@0.9" in table and f"{summary['mIoU@1/th90']:.4f}" in table


def test_the_robot_refuses_an_empty_object():
    with pytest.raises(ValueError, match="no object pixel"):
        IOGRobot().start(np.zeros((5, 5), np.int8))


@pytest.mark.slow
def test_evaluate_py_with_the_refinement_stand_in_on_grabcut(tmp_path):
    """evaluate.py robot=iog with the official-format refinement stand-in (fill rule v1), 2 GrabCut images."""
    root = require_shared_dataset("GrabCut")
    from tests.golden import fill_rule_state_dict, load_spec

    checkpoint = tmp_path / "IOG_PASCAL_SBD_REFINEMENT.pth"
    torch.save(fill_rule_state_dict(load_spec("iog_refinement_resnet101")), checkpoint)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "evaluate.py", f"checkpoint={checkpoint}", "data=grabcut", f"data.grabcut.root={root}",
        "robot=iog", "max_samples=2", "protocol.max_clicks=2", "threads=1", "num_examples=0",
        f"hydra.run.dir={tmp_path / 'out'}",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "ablation" not in result.stdout + result.stderr
    assert "IoU@0.1" in result.stdout and "IoU@0.9" in result.stdout and "NoC@85" in result.stdout
    document = json.loads((tmp_path / "out" / "results.json").read_text())["datasets"]["grabcut"]
    assert document["protocol"]["prob_thresholds"][0] == 0.1 and document["predictor"]["views"]["box_crop"]["byte_scale"]
    assert all(len(s["ious"]) == 2 for s in document["samples"]) and len(document["samples"]) == 2
    assert 0.0 <= document["summary"]["mIoU@1/th50"] <= 1.0
