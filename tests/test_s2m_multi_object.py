"""The multi-object scribble protocol: per-object robots, rounds committed together, per-object IoU."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from iseg.evaluation.multi_object import LabelMapSample, LabelMapSamples, evaluate_objects, label_map, object_view
from iseg.evaluation.protocol import ProtocolConfig, run_protocol
from iseg.interaction.prompts import Scribble
from iseg.interaction.scribbles.robot import ScribbleRobot

ROUNDS = ProtocolConfig(max_clicks=4, target_iou=1.01, unit="round", thresholds=(0.85, 0.90))


def _labels() -> np.ndarray:
    labels = np.zeros((64, 96), np.int32)
    labels[8:40, 6:40] = 1
    labels[20:60, 50:90] = 2
    labels[0:2, :] = -1
    return labels


class Recorder:
    """Stand-in multi-object predictor: the label map paints each object's true pixels once a positive
    stroke of it landed on them; records what it was given."""

    def __init__(self, labels: np.ndarray):
        self.labels = labels

    def set_image(self, image, object_ids=None):
        self.object_ids = list(object_ids)
        self.map = np.zeros(self.labels.shape, np.int32)
        self.added, self.commits = [], 0

    def add(self, prompt, object_id):
        if object_id not in self.object_ids:
            raise KeyError(f"unknown object id {object_id}")
        self.added.append((prompt, object_id))
        if prompt.is_positive:
            y, x = (int(v) for v in prompt.points[len(prompt.points) // 2])
            self.map[self.labels == self.labels[y, x]] = object_id
        return self.map

    def commit(self):
        self.commits += 1
        return self.map

    def label_map(self):
        return self.map


def test_each_objects_strokes_lie_on_its_errors_and_rounds_are_committed_together():
    labels = _labels()
    predictor = Recorder(labels)
    sample = LabelMapSample("two", np.zeros((64, 96, 3), np.uint8), labels, ("a", "b"))
    results = evaluate_objects(predictor, sample, ROUNDS, ScribbleRobot())
    assert [name for name, _ in results] == ["a", "b"] and predictor.object_ids == [1, 2]
    for prompt, object_id in predictor.added:
        points = np.array(prompt.points).astype(int)
        values = labels[points[:, 0], points[:, 1]]
        assert np.all(values == (object_id if prompt.is_positive else 0))  # own object, or background
    (_, a), (_, b) = results
    assert a.ious[0] == pytest.approx(1.0) and b.ious[0] == pytest.approx(1.0) and len(a.ious) == 4
    assert predictor.commits == 1  # later rounds have nothing to correct: no strokes, no commit
    assert a.round_sizes[1:] == [0, 0, 0] and sum(a.round_sizes) == len(a.clicks)


def test_an_object_taken_by_its_neighbour_gets_its_own_positive_stroke():
    labels = _labels()
    view = object_view(labels, 1)
    assert view[30, 60] == -1 and view[50, 10] == 0 and view[10, 10] == 1
    robot = ScribbleRobot()
    robot.start(object_view(labels, 2))
    predicted_as_1 = np.zeros(labels.shape, bool)
    strokes = robot.next_round(predicted_as_1)  # object 2 missing entirely: positives on it
    assert strokes and all(s.is_positive for s in strokes)


def test_label_maps_from_per_object_gts():
    a, b = np.zeros((4, 5), np.int8), np.zeros((4, 5), np.int8)
    a[0, :2], b[0, 1:3], a[3, 4], b[3, 3] = 1, 1, -1, -1
    labels = label_map([a, b])
    assert labels[0].tolist() == [1, 1, 2, 0, 0] and labels[3, 4] == -1 and labels[3, 3] == -1
    with pytest.raises(ValueError, match="no object"):
        label_map([])


def test_an_evaluation_sets_objects_are_grouped_by_image():
    gts = {("x", 1): np.pad(np.ones((2, 2), np.int8), 1), ("x", 2): np.pad(np.ones((1, 1), np.int8), ((0, 3), (3, 0))),
           ("y", 1): np.pad(np.ones((2, 2), np.int8), 1)}
    entries = [SimpleNamespace(image_path=Path(f"/set/{image}.jpg"), name=f"{image}_{k}") for image, k in gts]

    class Set:
        def __init__(self):
            self.entries = entries

        def __getitem__(self, i):
            return SimpleNamespace(name=entries[i].name, image=np.zeros((4, 4, 3), np.uint8), gt=list(gts.values())[i])

    samples = LabelMapSamples(Set())
    assert len(samples) == 2 and samples[0].object_names == ("x_1", "x_2") and samples[1].object_names == ("y_1",)
    assert samples[0].name == "x" and samples[0].labels[0, 3] == 2 and samples[0].labels[1, 1] == 1


class PaintNet(nn.Module):
    """Stand-in S2M network: the committed mask, plus 9 px around the round's positive strokes, minus 3 px
    around its negatives, as a logit map."""

    def default_inputs(self):
        from iseg.models.s2m.inputs import S2MInputs

        return S2MInputs()

    def forward(self, image, prev_mask, scribbles):
        pos = F.max_pool2d(scribbles[:, :1], 19, 1, 9)
        neg = F.max_pool2d(scribbles[:, 1:], 7, 1, 3)
        probs = torch.clamp(prev_mask + pos - 2 * neg, 0.02, 0.98)
        logits = torch.log(probs / (1 - probs))
        return {"object_logits": logits, "instances": 2 * logits}


def test_the_multi_object_predictor_runs_the_protocol_with_aggregated_label_maps():
    from iseg.inference.multi_object import MultiObjectPredictor

    labels = _labels()
    sample = LabelMapSample("two", np.zeros((64, 96, 3), np.uint8), labels, ("a", "b"))
    predictor = MultiObjectPredictor(PaintNet())
    run = run_protocol(predictor, [sample, sample], ROUNDS, ScribbleRobot(), evaluator=evaluate_objects)
    assert [(r.index, r.object_index, r.name) for r in run.records] == [(0, 0, "a"), (0, 1, "b"), (1, 0, "a"), (1, 1, "b")]
    for record in run.records:
        ious = record.result.ious
        assert len(ious) == 4 and ious.min() > 0.3 and ious.max() > 0.6  # the crude stand-in overshoots, then trims
    summary = run.dataset_result().summary
    assert "NoS@85" in summary and summary["mIoU@3"] > 0.5
    assert run.records[0].result.ious.tolist() == run.records[2].result.ious.tolist()  # deterministic
    with pytest.raises(KeyError, match="unknown object id 3"):
        predictor.add(Scribble(((10, 10),), True), 3)


def test_evaluate_checkpoint_runs_every_object_of_a_folder_image_at_once(tmp_path):
    import cv2
    from omegaconf import OmegaConf

    from iseg.data.eval.folder import FolderDataset
    from iseg.evaluation.runner import compose_eval_config, evaluate_checkpoint

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("p", "q"):
        cv2.imwrite(str(tmp_path / "images" / f"{name}.png"), np.zeros((64, 96, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "masks" / f"{name}.png"), np.where(_labels() < 0, 0, _labels()).astype(np.uint8))
    dataset = FolderDataset(tmp_path, mask_mode="instances")
    cfg = compose_eval_config(["robot=scribble", "predictor=s2m_multi", "multi_object=true"])
    predictor = OmegaConf.to_container(cfg.predictor, resolve=True)
    (evaluation,) = evaluate_checkpoint(
        PaintNet(), {"folder": dataset}, predictor, predictor_per_dataset={}, protocol=ROUNDS, robot=ScribbleRobot(),
        multi_object=True, max_samples=1, num_examples=2,
    )
    assert [(r.index, r.name) for r in evaluation.records] == [(0, "p.png#1"), (0, "p.png#2")]
    assert evaluation.summary["mIoU@1"] > 0.3 and "NoS@85" in evaluation.summary and not evaluation.examples
    from iseg.evaluation.multi_object import multi_object_predictor

    with pytest.raises(ValueError, match="refiner object is not supported"):
        multi_object_predictor(PaintNet(), refiner=object())  # BRS optimises one object's map
