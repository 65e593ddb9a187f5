"""The interaction core's seams: a new view, robot, prompt encoding or adapter is a class (plus a
config entry), and the predictor and the protocol loop take it unchanged.

Each worked example below is a few lines of test-only code: a transposing view, a scribble robot
with a scribble encoder and its adapter, and a robot chosen through the evaluation config.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from iseg.evaluation.protocol import ProtocolConfig, evaluate_sample
from iseg.evaluation.runner import compose_eval_config
from iseg.inference.flip import Flip
from iseg.inference.predictor import Predictor
from iseg.inference.views import Frame, View
from iseg.inference.zoom_in import ZoomIn
from iseg.interaction.clicks import clicks_to_points
from iseg.interaction.encoders import make_encoder, only_clicks, register_encoder
from iseg.interaction.prompts import Box, Click, Scribble
from iseg.interaction.robots import ClickRobot
from iseg.models.inputs import ClickInputs
from tests.test_predictor import DiskNet, _image


# ------------------------------------------------------------------ a new view


class Transpose(View):
    """Shows the network the transposed image; the prompts' (y, x) swap with ``prompt.map``."""

    def forward(self, frame: Frame) -> Frame:
        swap = [[p.map(lambda y, x: (x, y)) for p in prompts] for prompts in frame.prompts]
        return frame.with_tensors(frame.image.transpose(2, 3), frame.prev.transpose(2, 3), swap)

    def inverse(self, output: torch.Tensor) -> torch.Tensor:
        return output.transpose(2, 3)


def test_a_new_view_plugs_into_the_predictor():
    """DiskNet is pixel-wise and depends on distances to the clicks, so it commutes with transposition:
    the transposed view must give the plain maps, with flip and zoom-in around it as usual."""
    clicks = [Click(20, 10, True), Click(30, 50, False), Click(22, 12, True)]
    plain = Predictor(DiskNet(radius=3.0), views={"zoom_in": ZoomIn(target_size=64, min_crop_size=8), "flip": Flip()})
    views = {"zoom_in": ZoomIn(target_size=64, min_crop_size=8), "transpose": Transpose(), "flip": Flip()}
    transposed = Predictor(DiskNet(radius=3.0), views=views)
    for predictor in (plain, transposed):
        predictor.set_image(_image())
    for click in clicks:
        np.testing.assert_allclose(transposed.add(click), plain.add(click), atol=1e-6)
    assert transposed.net.calls[0][0].shape[2:] == (64, 48)  # the first click's full image, seen as (W, H)


def test_views_in_an_order_the_sigmoid_cannot_serve_are_refused():
    with pytest.raises(ValueError, match="logit-space view .* must come after every probability-space view"):
        Predictor(DiskNet(), views={"flip": Flip(), "zoom_in": ZoomIn()})


# ------------------------------------------------------------------ a new prompt type end to end


@register_encoder("scribble_points")
class ScribblePointsEncoder:
    """Test-only encoding: every scribble point becomes a click row of the (B, 2N, 3) layout."""

    def __call__(self, prompt_lists, device):
        clicks = [[Click(y, x, s.is_positive) for s in prompts for y, x in s.anchor_points()] for prompts in prompt_lists]
        return {"points": clicks_to_points(clicks, device=device)}


class ScribbleInputs(ClickInputs):
    """The RITM adapter with the scribble encoding: the network is unchanged."""

    def __init__(self):
        super().__init__(prev_mask=True)
        self.encoders = (make_encoder("scribble_points"),)


class LineRobot:
    """Test-only robot: a short horizontal scribble through the click the standard robot would make."""

    def __init__(self):
        self.clicker = ClickRobot()
        self.history: list[Scribble] = []

    def start(self, gt):
        self.clicker.start(gt)
        self.history = []
        self.width = gt.shape[1]

    def next(self, pred_mask):
        click = self.clicker.next(pred_mask)
        xs = [min(max(click.x + dx, 0), self.width - 1) for dx in (-2, 0, 2)]
        self.history.append(Scribble(tuple((click.y, x) for x in xs), click.is_positive))
        return self.history[-1]


def test_a_scribble_robot_encoder_and_adapter_run_through_the_unchanged_protocol():
    gt = np.zeros((48, 64), np.int8)
    gt[10:30, 15:45] = 1
    predictor = Predictor(DiskNet(radius=3.0), inputs=ScribbleInputs(), views={"flip": Flip()})
    predictor.set_image(_image())
    result = evaluate_sample(predictor, gt, ProtocolConfig(max_clicks=4, target_iou=1.01), robot=LineRobot())
    assert len(result.ious) == 4 and all(isinstance(p, Scribble) for p in result.clicks)
    _, points = predictor.net.calls[-1]
    assert points.shape[0] == 2 and int((points[0, :, 0] >= 0).sum()) == 3 * 4  # three rows per scribble
    assert result.ious[-1] > result.ious[0]
    with pytest.raises(TypeError, match="the 'points' encoder takes clicks only, got Scribble"):
        only_clicks([[result.clicks[0]]], "points")


def test_boxes_and_scribbles_move_through_flip_like_clicks():
    frame = Frame(torch.zeros(1, 3, 8, 10), torch.zeros(1, 1, 8, 10), [[Box(1, 2, 5, 6), Scribble(((1, 2), (3, 4)), False)]])
    out = Flip().forward(frame)
    box, scribble = out.prompts[1]
    assert (box.y0, box.x0, box.y1, box.x1) == (1, 3, 5, 7) and scribble.points == ((1.0, 7.0), (3.0, 5.0))
    assert out.image.shape[0] == out.prev.shape[0] == 2


# ------------------------------------------------------------------ a robot from the config


class CentreRobot:
    """Test-only robot chosen by config: always a positive click at the object's centre of mass."""

    def start(self, gt):
        ys, xs = np.nonzero(np.asarray(gt) == 1)
        self.centre = Click(int(ys.mean()), int(xs.mean()), True)
        self.history = []

    def next(self, pred_mask):
        self.history.append(self.centre)
        return self.centre


def test_the_evaluation_config_picks_the_robot_by_target():
    cfg = compose_eval_config([f"robot._target_={__name__}.CentreRobot", "predictor.views.zoom_in=null"])
    robot = instantiate(cfg.robot)
    predictor = instantiate(cfg.predictor)(DiskNet(radius=3.0))
    gt = np.zeros((48, 64), np.int8)
    gt[10:30, 15:45] = 1
    predictor.set_image(_image())
    result = evaluate_sample(predictor, gt, instantiate(cfg.protocol, max_clicks=3, target_iou=1.01), robot)
    assert result.clicks == [Click(19, 29, True)] * 3


class _CropAndScribbleSampler:
    """A sampler for a method that crops around its target and draws scribble maps (S2M/IOG-like)."""

    def __call__(self, sample, rng):
        gt = sample.get_object_mask(sample.root_objects[0]).astype(np.int32)
        ys, xs = np.nonzero(gt > 0)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        crop = gt[y0:y1, x0:x1]
        return crop, {
            "image": sample.image[y0:y1, x0:x1].copy(),
            "scribbles": np.stack([crop == 1, crop == 0]).astype(np.uint8),
        }


def test_a_sampler_with_named_fields_and_its_own_crop_feeds_the_dataset():
    from torch.utils.data import DataLoader

    from iseg.data.interactive_dataset import InteractiveDataset
    from iseg.data.synthetic import SyntheticShapesSource

    source = SyntheticShapesSource(num_samples=4, image_size=(64, 96))
    dataset = InteractiveDataset(source, _CropAndScribbleSampler(), seed=0)
    item = dataset[0]
    assert set(item) == {"images", "scribbles", "instances"}
    height, width = item["instances"].shape[-2:]
    assert item["images"].shape == (3, height, width) and item["scribbles"].shape == (2, height, width)
    assert torch.equal(item["scribbles"][0].bool(), item["instances"][0] == 1)
    batch = next(iter(DataLoader([dataset[1], dataset[1]], batch_size=2)))
    assert batch["scribbles"].dtype == torch.uint8 and batch["scribbles"].shape[0] == 2


def test_a_sampler_whose_gt_and_image_disagree_is_named():
    from iseg.data.interactive_dataset import InteractiveDataset
    from iseg.data.synthetic import SyntheticShapesSource

    class Broken(_CropAndScribbleSampler):
        def __call__(self, sample, rng):
            crop, fields = super().__call__(sample, rng)
            return crop, {**fields, "image": sample.image}

    dataset = InteractiveDataset(SyntheticShapesSource(num_samples=2, image_size=(64, 96)), Broken(), seed=0)
    with pytest.raises(ValueError, match="Broken: gt of shape"):
        dataset[0]
