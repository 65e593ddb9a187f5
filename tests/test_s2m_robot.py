"""The scribble robot, Scribble prompts' bad input, and the scribble protocol (rounds, NoS, reports)."""

from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest

from iseg.evaluation.protocol import ProtocolConfig, Sample, evaluate_sample, run_protocol
from iseg.interaction.prompts import Click, Scribble, check_prompt
from iseg.interaction.robots import ClickRobot, next_round
from iseg.interaction.scribbles.robot import ScribbleRobot


def _gt(shape=(96, 128)) -> np.ndarray:
    gt = np.zeros(shape, np.int8)
    gt[20:76, 24:100] = 1
    gt[0:4, :] = -1
    return gt


def _stroke_mask(scribble: Scribble, shape, thickness: int) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    points = np.array([(x, y) for y, x in scribble.points], np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [points], False, 1, thickness)
    if len(scribble.points) == 1:
        cv2.circle(canvas, tuple(points[0, 0]), thickness, 1, -1)
    return canvas.astype(bool)


class PaintPredictor:
    """Stand-in scribble predictor: a positive stroke adds the ground truth within 12 px of it, a
    negative one clears 12 px around it; ``commit`` counts rounds."""

    def __init__(self, gt: np.ndarray):
        self.gt = gt == 1
        self.commits = 0

    def set_image(self, image) -> None:
        self.mask = np.zeros(self.gt.shape, bool)
        self.open_round = []

    def add(self, prompt) -> np.ndarray:
        prompt = check_prompt(prompt, *self.gt.shape)
        near = _stroke_mask(prompt, self.gt.shape, 25)
        self.mask = (self.mask | (near & self.gt)) if prompt.is_positive else (self.mask & ~near)
        self.open_round.append(prompt)
        return self.mask.astype(np.float32)

    def commit(self) -> None:
        self.commits += 1
        self.open_round = []


def test_first_round_draws_positive_strokes_inside_the_object_and_repeats():
    gt = _gt()
    robot = ScribbleRobot()
    robot.start(gt)
    strokes = robot.next_round(np.zeros(gt.shape, bool))
    assert strokes and all(s.is_positive for s in strokes)
    inside = np.concatenate([np.array(s.points) for s in strokes]).astype(int)
    assert np.all(gt[inside[:, 0], inside[:, 1]] == 1)
    assert max(len(s.points) for s in strokes) > 40  # a long stroke along the object, not a dot
    again = ScribbleRobot()
    again.start(gt)
    assert again.next_round(np.zeros(gt.shape, bool)) == strokes and robot.history == strokes


def test_later_rounds_mark_false_positives_negative_and_stop_when_nothing_is_wrong():
    gt = _gt()
    robot = ScribbleRobot()
    robot.start(gt)
    pred = gt == 1
    pred[30:70, 100:124] = True  # a false-positive strip right of the object
    strokes = robot.next_round(pred)
    assert strokes and not any(s.is_positive for s in strokes)
    points = np.concatenate([np.array(s.points) for s in strokes]).astype(int)
    assert np.all((points[:, 1] >= 100) & (gt[points[:, 0], points[:, 1]] == 0))
    assert robot.next_round(gt == 1) == []  # perfect: an empty round
    ignored = (gt == 1) | (gt == -1)
    assert robot.next_round(ignored) == []  # ignore pixels are never errors


def test_an_error_the_skeleton_loses_becomes_a_dot_where_the_clicker_would_click():
    gt = _gt()
    robot = ScribbleRobot()
    robot.start(gt)
    pred = gt == 1
    pred[41, 51] = False  # one false-negative pixel vanishes at half resolution
    (dot,) = robot.next_round(pred)
    assert dot == Scribble(((41, 51),), True)


def test_scribble_robot_bad_input_is_named():
    robot = ScribbleRobot()
    with pytest.raises(RuntimeError, match="start"):
        robot.next_round(np.zeros((4, 4), bool))
    robot.start(_gt())
    with pytest.raises(ValueError, match="pred_mask has shape"):
        robot.next_round(np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="gt values"):
        robot.start(np.full((4, 4), 7))
    with pytest.raises(ValueError, match="min_nodes"):
        ScribbleRobot(min_nodes=-1)
    with pytest.raises(ValueError, match="max_strokes"):
        ScribbleRobot(max_strokes=0)


def test_max_strokes_keeps_the_longest_and_next_gives_one():
    gt = np.zeros((96, 128), np.int8)
    gt[10:40, 10:60] = 1
    gt[60:70, 80:90] = 1
    robot = ScribbleRobot(max_strokes=1)
    robot.start(gt)
    (stroke,) = robot.next_round(np.zeros(gt.shape, bool))
    assert max(y for y, _ in stroke.points) < 40  # the big object's stroke
    robot = ScribbleRobot()
    robot.start(gt)
    single = robot.next(np.zeros(gt.shape, bool))
    assert robot.history == [single] and max(y for y, _ in single.points) < 40


def test_scribble_prompts_refuse_empty_or_malformed_strokes():
    with pytest.raises(ValueError, match="empty positive scribble"):
        Scribble((), True)
    with pytest.raises(ValueError, match=r"negative scribble point 1 is \(1, 2, 3\)"):
        Scribble(((0, 0), (1, 2, 3)), False)
    with pytest.raises(ValueError, match="finite"):
        Scribble(((0, float("nan")),), True)
    with pytest.raises(TypeError, match="sequence of \\(y, x\\) pairs"):
        Scribble(5, True)


def test_scribbles_outside_the_image_are_clipped_with_a_warning_naming_the_stroke():
    stroke = Scribble(((5, 5), (5, 30), (12, 30)), True)
    with pytest.warns(UserWarning, match=r"positive scribble of 3 points: 2 outside the 10x25 image \(first: point 1"):
        clipped = check_prompt(stroke, 10, 25)
    assert clipped == Scribble(((5, 5), (5, 24), (9, 24)), True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_prompt(Scribble(((0, 0), (9, 24)), False), 10, 25).points == ((0.0, 0.0), (9.0, 24.0))
    with pytest.raises(ValueError, match="every point lies outside the 10x25 image"):
        check_prompt(Scribble(((-3, 2), (-1, 40)), False), 10, 25)
    with pytest.raises(ValueError, match="lies outside"):
        check_prompt(Click(10, 3, True), 10, 25)  # clicks stay refused, not clipped


def test_the_protocol_runs_scribble_rounds_and_reports_nos():
    gt = _gt()
    predictor = PaintPredictor(gt)
    predictor.set_image(None)
    settings = ProtocolConfig(max_clicks=5, target_iou=1.01, unit="round", thresholds=(0.85, 0.90))
    result = evaluate_sample(predictor, gt, settings, ScribbleRobot())
    assert len(result.ious) == 5 and predictor.commits == sum(1 for n in result.round_sizes if n)
    assert sum(result.round_sizes) == len(result.clicks) and result.round_sizes[0] >= 1
    assert [len(r) for r in result.rounds()] == result.round_sizes
    assert result.ious[-1] >= result.ious[0] and result.ious[-1] > 0.85
    run = run_protocol(PaintPredictor(gt), [Sample("a", None, gt)], settings, ScribbleRobot())
    summary = run.dataset_result().summary
    assert set(summary) >= {"NoS@85", "NoS@90", "NoF@85", "mIoU@1", "mIoU@5"} and "NoC@85" not in summary
    with pytest.raises(ValueError, match="protocol unit"):
        ProtocolConfig(unit="stroke")


def test_click_robots_are_one_prompt_rounds():
    gt = _gt()
    robot = ClickRobot()
    robot.start(gt)
    (click,) = next_round(robot, np.zeros(gt.shape, bool))
    assert isinstance(click, Click) and click.is_positive


def test_reports_name_rounds_and_write_scribbles(tmp_path):
    from iseg.evaluation.report import write_reports
    from iseg.evaluation.runner import DatasetEvaluation

    gt = _gt()
    settings = ProtocolConfig(max_clicks=3, target_iou=1.01, unit="round", thresholds=(0.85, 0.90))
    run = run_protocol(PaintPredictor(gt), [Sample("rect", np.zeros((*gt.shape, 3), np.uint8), gt)], settings, ScribbleRobot())
    evaluation = DatasetEvaluation("toy", "Toy", "/toy", run.records, [], run.dataset_result(), 1.0, {}, settings.as_dict())
    evaluation.examples = []
    files = write_reports([evaluation], tmp_path, {"checkpoint": "stand-in"})
    header = files.table.splitlines()[1].split()
    assert header[2:4] == ["NoS@85", "NoS@90"] and "SPR" in header and files.table.startswith("NoS evaluation")
    assert "NoS@95 '-': not among protocol.thresholds (0.85, 0.9)" in files.table
    document = json.loads(files.json_file.read_text())
    sample = document["datasets"]["toy"]["samples"][0]
    assert sample["clicks"][0]["type"] == "Scribble" and len(sample["clicks"][0]["points"]) > 10
    assert len(sample["round_sizes"]) == 3 and sum(sample["round_sizes"]) == len(sample["clicks"])
    rows = files.csv_file.read_text().splitlines()
    assert rows[0].endswith(",prompts") and len(rows) == 1 + 3


def test_the_scribble_robot_config_sets_the_round_protocol():
    from hydra.utils import instantiate

    from iseg.evaluation.runner import compose_eval_config

    cfg = compose_eval_config(["robot=scribble"])
    robot, protocol = instantiate(cfg.robot), instantiate(cfg.protocol)
    assert isinstance(robot, ScribbleRobot) and robot.seed == 0
    assert list(cfg.predictor_networks) == ["S2MNet"] and "pad" in cfg.predictor.views  # S2M's predictor
    assert protocol.unit == "round" and protocol.count_name == "NoS" and protocol.max_clicks == 10
    assert [round(t, 2) for t in protocol.noc_thresholds] == [0.8, 0.85, 0.9, 0.95]
    click = compose_eval_config([])
    assert instantiate(click.protocol) == ProtocolConfig()  # the click protocol is unchanged
