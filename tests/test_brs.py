"""BRS refiners: the loss's click masks, early exits and state, and the golden run of the original
f-BRS code (RGB-BRS, DistMap-BRS, f-BRS-A/C on the fill-rule HRNet18-OCR64, clicks 1-3 of GrabCut
227092; tolerances of ../shared/golden/protocol/README_fbrs.md)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from iseg.evaluation.protocol import ProtocolConfig, evaluate_sample
from iseg.evaluation.runner import compose_eval_config
from iseg.inference.brs import BRSObjective, FeatureBRS, InputBRS, click_masks
from iseg.inference.flip import Flip
from iseg.inference.predictor import Predictor
from iseg.inference.refiners import NoRefine
from iseg.inference.zoom_in import ZoomIn
from iseg.interaction.prompts import Click
from tests.golden import GOLDEN_MODELS, fill_rule_state_dict, load_spec

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden" / "protocol" / "fbrs_hrnet18_ocr64_brs_grabcut_3clicks"
MODES = {"RGB-BRS": "rgb_brs", "DistMap-BRS": "distmap_brs", "f-BRS-A": "fbrs_a", "f-BRS-C": "fbrs_c"}


def test_click_masks_are_rounded_3x3_squares_with_the_reference_edge_cut():
    pos, neg = click_masks([[Click(2.5, 3.5, True), Click(6.0, 0.0, False)], [Click(0.0, 4.0, True)]], 8, 9, "cpu")
    # 2.5 -> 2 and 3.5 -> 4 (half to even): rows 1-3, columns 3-5
    assert pos[0, 0].nonzero().tolist() == [[r, c] for r in (1, 2, 3) for c in (3, 4, 5)]
    # column 0: the slice starts at -1 and is empty, as the reference's
    assert neg[0].sum() == 0
    assert pos[1].sum() == 0 and neg[1].sum() == 0  # row 0: empty too


def test_objective_keeps_the_best_logits_and_exits_with_a_zero_gradient_when_clicks_are_met():
    pos = torch.zeros(1, 1, 4, 4)
    pos[0, 0, 1, 1] = 1
    neg = torch.zeros(1, 1, 4, 4)
    neg[0, 0, 3, 3] = 1

    def logits_of(params):
        return params.view(1, 1, 4, 4) * 10, params.sum() * 0

    objective = BRSObjective(logits_of, pos, neg)
    _, grad = objective(np.zeros(16))
    assert np.abs(grad).sum() > 0 and objective.best_loss == pytest.approx(0.5, rel=1e-4)  # 0.5^2 + 0.5^2
    good = np.zeros(16)
    good[5], good[15] = 1.0, -1.0  # p(1, 1) = sigmoid(10), p(3, 3) = sigmoid(-10): both clicks met
    loss, grad = objective(good)
    assert not grad.any() and loss < 0.5 and objective.evaluations == 2
    assert torch.equal(objective.best_logits, torch.from_numpy(good).float().view(1, 1, 4, 4) * 10)


# ------------------------------------------------------------------ golden


@pytest.fixture(scope="module")
def fbrs_net():
    pytest.importorskip("iseg.models.fbrs", reason="f-BRS networks not available")
    from iseg.models.checkpoints import load_model

    if not (GOLDEN_MODELS / "fbrs_hrnet18_ocr64" / "spec.json").is_file():
        pytest.skip("fbrs_hrnet18_ocr64 golden not in tests/fixtures/golden/models")
    state = fill_rule_state_dict(load_spec("fbrs_hrnet18_ocr64"))
    state["feature_extractor.cls_head.weight"] = state["feature_extractor.cls_head.weight"] * 2.0**-7
    state["feature_extractor.cls_head.bias"] = torch.full((1,), 2.0)
    return load_model(state)


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN.with_suffix(".npz")) as data:
        arrays = {key: data[key] for key in data.files}
    return json.loads(GOLDEN.with_suffix(".json").read_text()), arrays



@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(MODES))
def test_brs_modes_match_the_reference(mode, fbrs_net, golden, one_thread):
    meta, arrays = golden
    reference = meta["modes"][mode]
    refiner = instantiate(compose_eval_config([f"refiner={MODES[mode]}"]).predictor.refiner)
    assert refiner.net_clicks_limit == meta["predictor_common"]["net_clicks_limit"][mode]
    predictor = Predictor(fbrs_net, views={"zoom_in": ZoomIn(target_size=160), "flip": Flip()}, refiner=refiner)
    predictor.set_image(arrays["image"])
    records = []
    original_add = Predictor.add

    def record(prompt):
        probs = original_add(predictor, prompt)
        objective = refiner.last_objective
        records.append((probs, predictor.views["zoom_in"].roi, objective, np.asarray(refiner.variables)))
        return probs

    predictor.add = record
    result = evaluate_sample(predictor, arrays["gt"], ProtocolConfig(max_clicks=3, target_iou=1.01))
    assert [[c.y, c.x, int(c.is_positive)] for c in result.clicks] == reference["clicks"]
    for k, ((probs, roi, objective, x), want) in enumerate(zip(records, reference["per_click"]), start=1):
        assert (list(roi) if roi is not None else None) == want["roi"], k
        if k == 1:
            np.testing.assert_allclose(probs, arrays[f"{mode}/click1"], atol=1e-5, rtol=0)
            assert objective is None
            assert np.abs(np.array(result.inter_union[0]) - want["inter_union"]).max() <= 2
            continue
        lbfgs = ast.literal_eval(want["lbfgs"]) if isinstance(want["lbfgs"], str) else want["lbfgs"]
        expected = arrays[f"{mode}/clicks23_f16"][k - 2].astype(np.float32)
        if k == 2:
            first = lbfgs["evals_f_gradnorm_maxabsx"][0][0]
            assert objective.losses[0] == pytest.approx(first, rel=1e-5)
            assert objective.evaluations == lbfgs["funcalls"]
            feature = mode.startswith("f-BRS")
            assert objective.best_loss == pytest.approx(want["best_loss"], rel=1e-5 if feature else 1e-4)
            np.testing.assert_allclose(probs, expected, atol=1e-3 if feature else 2e-3, rtol=0)
            if not feature and lbfgs["funcalls"] == 2:  # one unit step from zero: -g / ||g||
                assert np.linalg.norm(x) == pytest.approx(1.0, abs=1e-4)
        else:  # free running from our own click-2 result
            path = [evaluation[0] for evaluation in lbfgs["evals_f_gradnorm_maxabsx"]]
            shared = min(len(path), objective.evaluations, 10)
            np.testing.assert_allclose(objective.losses[:shared], path[:shared], rtol=1e-3)
            if lbfgs["funcalls"] < 13:  # the reference's own run-to-run tolerances
                assert result.ious[k - 1] == pytest.approx(want["iou"], abs=0.01)
                assert objective.best_loss == pytest.approx(want["best_loss"], rel=0.05)
                np.testing.assert_allclose(probs, expected, atol=2e-2, rtol=0)
            else:  # a click that ran into maxfun returns its last step: float noise of 20 steps shows
                assert result.ious[k - 1] == pytest.approx(want["iou"], abs=0.02)
                assert objective.best_loss == pytest.approx(want["best_loss"], rel=0.1)


@pytest.mark.slow
def test_first_click_is_the_plain_forward_and_undo_replays_exactly(fbrs_net, one_thread):
    image = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    clicks = [Click(20, 30, True), Click(30, 10, False), Click(25, 40, True)]
    plain = Predictor(fbrs_net, views={"flip": Flip()}, refiner=NoRefine())
    plain.set_image(image)
    first = plain.add(clicks[0])
    for refiner in (FeatureBRS("C"), InputBRS("rgb")):
        predictor = Predictor(fbrs_net, views={"flip": Flip()}, refiner=refiner)
        predictor.set_image(image)
        maps = [predictor.add(click).copy() for click in clicks]
        np.testing.assert_array_equal(maps[0], first)  # no optimisation at the first click
        assert refiner.last_objective is not None and refiner.last_objective.evaluations >= 1
        predictor.undo()
        np.testing.assert_array_equal(predictor.add(clicks[2]), maps[2])


@pytest.mark.slow
def test_every_refiner_runs_through_evaluate_py_on_grabcut(tmp_path):
    """evaluate.py with each refiner option (one Hydra multirun) on the first real GrabCut image,
    with the f-BRS stand-in network saved as an official plain state dict."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT, require_shared_dataset

    root = require_shared_dataset("GrabCut")
    pytest.importorskip("iseg.models.fbrs", reason="f-BRS networks not available")
    state = fill_rule_state_dict(load_spec("fbrs_hrnet18_ocr64"))
    state["feature_extractor.cls_head.weight"] = state["feature_extractor.cls_head.weight"] * 2.0**-7
    state["feature_extractor.cls_head.bias"] = torch.full((1,), 2.0)
    checkpoint = tmp_path / "hrnet18_ocr64_sbd.pth"
    torch.save(state, checkpoint)
    refiners = ["none", *MODES.values(), "fbrs_b"]
    command = [
        sys.executable, "evaluate.py", "-m", f"checkpoint={checkpoint}", "data=grabcut", f"data.grabcut.root={root}",
        f"refiner={','.join(refiners)}", "max_samples=1", "protocol.max_clicks=2", "protocol.target_iou=1.01",
        "predictor.views.zoom_in.target_size=96", "threads=1", "num_examples=0", f"hydra.sweep.dir={tmp_path / 'runs'}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for index, name in enumerate(refiners):
        document = json.loads((tmp_path / "runs" / str(index) / "results.json").read_text())
        assert document["predictor"]["refiner"]["_target_"].endswith(("NoRefine", "InputBRS", "FeatureBRS")), name
        assert len(document["datasets"]["grabcut"]["samples"][0]["ious"]) == 2, name
