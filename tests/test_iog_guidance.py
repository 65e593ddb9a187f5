"""IOG's prompts, crop around the box, guidance heatmaps and refinement click rule against the reference
pipeline (golden ../shared/golden/protocol/iog_guidance.*, copied to tests/fixtures)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from iseg.inference.box_crop import BoxCrop, byte_scaled
from iseg.inference.predictor import Predictor
from iseg.inference.zoom_in import crop_resize, paste_resized
from iseg.interaction.encoders import make_encoder
from iseg.interaction.iog_guidance import (
    add_click,
    guidance_heatmaps,
    mask_points,
    refinement_click,
)
from iseg.interaction.iog_robot import IOGRobot
from iseg.interaction.metrics import iou
from iseg.interaction.prompts import Box, Click, InsideOutside
from iseg.models.iog.inputs import IOGInputs
from tests.conftest import FIXTURES

GOLDEN = FIXTURES / "golden" / "protocol"
MASKS = ("m0", "m1", "m2")


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN / "iog_guidance.npz") as data:
        return {key: data[key] for key in data.files}


def _crop_box(label: np.ndarray, relax: int = 30) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(label == 255)
    return ys.min() - relax, ys.max() + relax, xs.min() - relax, xs.max() + relax


@pytest.mark.parametrize("mask", MASKS)
def test_crop_points_heatmaps_and_paste_match_the_reference_pipeline(golden, mask):
    label = golden[f"{mask}_label"]
    rmin, rmax, cmin, cmax = box = _crop_box(label)
    assert [cmin, rmin, cmax, rmax] == golden[f"{mask}_bbox"].tolist()
    # the zero-padded crop before resizing is the raw crop (image rebuilt from it where it lies inside)
    raw = golden[f"{mask}_crop_raw"].astype(np.float32)
    gt, void = (label == 255).astype(np.float32), (label == 128).astype(np.float32)
    image = np.zeros((*label.shape, 3), np.float32)
    r0, c0 = max(rmin, 0), max(cmin, 0)
    r1, c1 = min(rmax, label.shape[0] - 1), min(cmax, label.shape[1] - 1)
    image[r0 : r1 + 1, c0 : c1 + 1] = raw[r0 - rmin : r1 - rmin + 1, c0 - cmin : c1 - cmin + 1]
    stacked = torch.from_numpy(np.concatenate([image, gt[..., None], void[..., None]], axis=2)).permute(2, 0, 1)[None]
    assert torch.equal(crop_resize(stacked, box, tuple(raw.shape[:2]), "nearest", None)[0, :3].permute(1, 2, 0), torch.from_numpy(raw))
    crop = crop_resize(stacked, box, (512, 512), "bilinear", False)[0].numpy()
    assert np.abs(crop[:3].transpose(1, 2, 0)[::8, ::8] - golden[f"{mask}_crop_image_s8"]).max() <= 1e-3
    assert np.abs(crop[3] - golden[f"{mask}_crop_gt"]).max() <= 1e-5
    assert np.abs(crop[4] - golden[f"{mask}_crop_void"]).max() <= 1e-5
    inside, corners = mask_points(crop[3] > 0.5)
    assert [[x, y] for y, x in [inside, *corners]] == golden[f"{mask}_points"].tolist()
    heatmaps = guidance_heatmaps(inside, corners, 512, 512)
    assert np.abs(heatmaps - golden[f"{mask}_heatmaps"]).max() <= 1e-3
    # paste-back (INTER_CUBIC into a zero map), SciPy 1.1 byte scaling, Jaccard with void at 0.1..0.9
    pred = torch.from_numpy(golden[f"{mask}_paste_pred512"])[None, None]
    pasted = paste_resized(pred, box, label.shape, "bicubic", False)[0, 0]
    assert np.abs(pasted.numpy() - golden[f"{mask}_pasted"]).max() <= 1e-5
    u8 = (byte_scaled(torch.from_numpy(golden[f"{mask}_pasted"])) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(u8, golden[f"{mask}_pasted_png_u8"])
    target = np.where(label == 128, -1, (label == 255).astype(np.int8))
    jaccard = [iou(u8 / 255.0 > th, target) for th in np.arange(1, 10) / 10]
    np.testing.assert_allclose(jaccard, golden[f"{mask}_jaccard_th"], rtol=0, atol=1e-12)


def test_the_box_crop_view_and_encoder_give_the_reference_network_input(golden):
    """Image + box + inside point through the predictor's view and the IOG adapter = the reference input."""
    label = golden["m0_label"]
    rmin, rmax, cmin, cmax = _crop_box(label, relax=0)
    raw = golden["m0_crop_raw"]
    image = np.zeros((*label.shape, 3), np.uint8)
    image[70:259, 127:357] = raw  # m0's crop lies inside the image
    robot = IOGRobot()
    robot.start((label == 255).astype(np.int8))
    prompt = robot.next(np.zeros(label.shape, bool))
    assert (prompt.box.y0, prompt.box.x0, prompt.box.y1, prompt.box.x1) == (rmin, cmin, rmax, cmax)
    view = BoxCrop()
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    from iseg.inference.views import Frame

    frame = view.forward(Frame(tensor, torch.zeros_like(tensor[:, :1]), [[prompt]]))
    inputs = IOGInputs()
    net_input = inputs(frame.image, frame.prev, inputs.encode(frame.prompts, "cpu"), 0)["image"][0].numpy()
    assert np.abs(net_input[:3].transpose(1, 2, 0)[::8, ::8] - golden["m0_crop_image_s8"]).max() <= 1e-3
    moved = frame.prompts[0][0]
    assert (round(moved.inside.x), round(moved.inside.y)) == tuple(golden["m0_points"][0])
    # corners: from the mapped box (at most 1 px from the reference's, which come from the resized GT)
    corners = np.array([[round(moved.box.x0) - 10, round(moved.box.y0) - 10], [round(moved.box.x1) + 10, round(moved.box.y1) + 10]])
    assert np.abs(corners - golden["m0_points"][[1, 4]]).max() <= 1
    assert np.abs(net_input[3] - golden["m0_heatmaps"][0]).max() <= 1e-3


@pytest.mark.parametrize("case", range(4))
def test_refinement_click_rule_parity_and_correct_labels(golden, case):
    cases = json.loads((GOLDEN / "iog_guidance.json").read_text())["refinement_click_cases"]
    pred, gt = golden[f"click{case}_pred"] > 0.5, golden[f"click{case}_gt"] > 0.5
    previous = golden["m0_heatmaps"] if case < 3 else np.zeros((2, 512, 512), np.float32)
    click = refinement_click(pred, gt, "parity")
    assert (click.y, click.x) == (cases[case]["click_row"], cases[case]["click_col"])
    out = add_click(previous, click.y, click.x, click.is_positive)
    assert np.array_equal(out.astype(np.uint8), golden[f"click{case}_guidance_out"])
    correct = refinement_click(pred, gt, "correct")
    assert correct.is_positive == cases[case]["gt_at_row_col"]
    # case 3: the click is inside the object; the reference (parity) writes it as a negative click
    assert (correct.is_positive != click.is_positive) == (case == 3)


def test_bad_iog_prompts_are_refused_naming_the_values():
    with pytest.raises(ValueError, match=r"box \(y0=5, x0=2, y1=5, x1=9\) has zero area"):
        InsideOutside(Box(5, 2, 5, 9), Click(5, 4, True))
    with pytest.raises(ValueError, match=r"inside point \(y=20, x=4\) lies outside the box \(y0=1, x0=2, y1=10, x1=9\)"):
        InsideOutside.from_corners([(1, 2), (10, 9)], (20, 4))
    with pytest.raises(ValueError, match="2 opposite corners or 4 corners"):
        InsideOutside.from_corners([(1, 2), (10, 9), (3, 3)], (5, 5))
    four = InsideOutside.from_corners([(1, 9), (10, 2), (1, 2), (10, 9)], (5, 5))
    assert (four.box.y0, four.box.x0, four.box.y1, four.box.x1) == (1, 2, 10, 9)
    predictor = Predictor(_GuidanceNet(), views={"box_crop": BoxCrop(size=(32, 32), relax=2)})
    predictor.set_image(np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(ValueError, match=r"point \(y=25.0, x=9.0\) lies outside the 20x30 image"):
        predictor.add(InsideOutside.from_corners([(1, 2), (25, 9)], (5, 5)))
    with pytest.raises(TypeError, match="needs the interaction to start with an InsideOutside prompt"):
        predictor.add(Click(3, 3, True))
    with pytest.raises(ValueError, match="parity"):
        refinement_click(np.zeros((4, 5), bool), np.ones((4, 5), bool), "parity")


class _GuidanceNet(torch.nn.Module):
    """Test network: the inside heatmap, centred on zero, as logits (a blob at the inside point)."""

    def __init__(self):
        super().__init__()
        self.calls: list[torch.Tensor] = []

    def forward(self, image, guidance):
        self.calls.append(guidance)
        return {"instances": (guidance[:, :1] - 100.0) / 10 + (guidance[:, 1:] * 0)}

    def default_inputs(self):
        from iseg.models.iog.inputs import IOGRefinementInputs

        return IOGRefinementInputs(size=(32, 32))


def test_predictor_with_box_crop_correction_clicks_and_undo():
    predictor = Predictor(_GuidanceNet(), views={"box_crop": BoxCrop(size=(32, 32), relax=2)}, pred_thr=0.5)
    predictor.set_image(np.zeros((40, 60, 3), np.uint8))
    first = predictor.add(InsideOutside.from_corners([(10, 20), (25, 41)], (17, 30)))
    assert first.shape == (40, 60) and first[17, 30] > 0.5 and first[:7].max() == 0 and first[:, :17].max() == 0
    net = predictor.net
    second = predictor.add(Click(12, 38, True))  # a correction click adds a Gaussian to channel 0
    assert second[12, 38] > 0.5 and first[12, 38] < 0.5
    # the other channel only loses its fractions (the reference's uint8 cast)
    assert torch.equal(net.calls[-1][:, 1], net.calls[0][:, 1].floor()) and not torch.equal(net.calls[-1][:, 0], net.calls[0][:, 0])
    assert np.array_equal(predictor.undo(), first)
    assert predictor.views["box_crop"].box == (8, 27, 18, 43)


def test_the_iog_encoder_is_registered_and_needs_the_box_first():
    encoder = make_encoder("iog_guidance", size=(16, 16))
    out = encoder([[InsideOutside(Box(3, 3, 12, 12), Click(8, 8, True)), Click(4, 4, False)]], "cpu")
    assert out["guidance"].shape == (1, 2, 16, 16) and float(out["guidance"].max()) == 255.0
    assert float(out["click_guidance"][0, 1, 4, 4]) == 255.0 and float(out["guidance"][0, 1, 4, 4]) < 255.0
    with pytest.raises(TypeError, match="needs an InsideOutside prompt first"):
        encoder([[Click(4, 4, True)]], "cpu")
