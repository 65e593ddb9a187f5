"""Forte et al.'s click encoding, resizes, simulated user and evaluation loop against the reference
run (golden ``forte_clicks.{json,npz}``, README_forte.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from iseg.evaluation.protocol import ProtocolConfig, evaluate_sample
from iseg.inference.forte_demo import ForteDemoView, force_clicks, nearest_source_indices, remove_non_fg_connected
from iseg.interaction.encoders import make_encoder
from iseg.interaction.forte_clicks import gaussian_click_maps, rasterize_trimap
from iseg.interaction.forte_robot import ForteClickRobot, forte_next_click
from iseg.interaction.metrics import noc
from iseg.interaction.prompts import Click, Prompt
from tests.conftest import FIXTURES, require_shared_dataset
from tests.protocol_helpers import FunctionPredictor
from tests.test_protocol import read_grabcut_mask

GOLDEN = FIXTURES / "golden" / "protocol"
# alpha >= 0.5 as "probs > pred_thr" on float32 maps: the float32 just below 0.5
FORTE_PRED_THR = 0.49999997


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN / "forte_clicks.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def golden_json() -> dict:
    return json.loads((GOLDEN / "forte_clicks.json").read_text())


def _pixels_of(trimap: np.ndarray) -> torch.Tensor:
    """click_pixels rows (y, x, channel) of a (H, W, 2) trimap, row-major per channel."""
    rows = [[float(y), float(x), float(c)] for c in (0, 1) for y, x in zip(*np.nonzero(trimap[:, :, c]))]
    return torch.tensor([rows], dtype=torch.float32)


def test_pred_threshold_is_alpha_at_least_half() -> None:
    values = np.array([0.5, np.nextafter(np.float32(0.5), np.float32(0)), 0.50000006], dtype=np.float32)
    assert ((values > FORTE_PRED_THR) == (values >= 0.5)).all()


@pytest.mark.parametrize("case", ["mapsA", "mapsB"])
def test_click_maps_match_trimap_transform(golden: dict[str, np.ndarray], case: str) -> None:
    trimap = golden[f"{case}_trimap_scaled" if case == "mapsA" else f"{case}_trimap"]
    pixels = _pixels_of(trimap)
    height, width = trimap.shape[:2]
    maps = gaussian_click_maps(pixels, height, width)[0].numpy()
    np.testing.assert_allclose(maps, golden[f"{case}_click_maps"], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(rasterize_trimap(pixels, height, width)[0].numpy(), trimap.transpose(2, 0, 1))


def test_nearest_blocks_match_scale_input(golden: dict[str, np.ndarray], golden_json: dict) -> None:
    """The view turns each native click into the block that resizing the trimap marks."""
    case = golden_json["mapsA"]
    (height, width), (new_h, new_w) = case["native_hw"], case["scaled_hw"]
    rows, cols = nearest_source_indices(height, new_h), nearest_source_indices(width, new_w)
    for key, positive in (("fg_clicks_yx", True), ("bg_clicks_yx", False)):
        pixels = []
        for y, x in case[key]:
            block = ForteDemoView._block(Click(y, x, positive), rows, cols)
            pixels += [[int(py), int(px)] for py, px in block.points]
        expected = case["scaled_fg_pixels_yx" if positive else "scaled_bg_pixels_yx"]
        assert sorted(pixels) == sorted(expected)
    # the encoder + rasteriser reproduce the scaled trimap from the blocks
    prompts = [ForteDemoView._block(Click(y, x, k == "fg_clicks_yx"), rows, cols) for k in ("fg_clicks_yx", "bg_clicks_yx") for y, x in case[k]]
    pixels = make_encoder("forte_click_pixels")([prompts], "cpu")["click_pixels"]
    trimap = rasterize_trimap(pixels, new_h, new_w)[0].numpy()
    np.testing.assert_array_equal(trimap, golden["mapsA_trimap_scaled"].transpose(2, 0, 1))


def test_resizes_of_the_demo(golden: dict[str, np.ndarray]) -> None:
    image = golden["resize_image"].transpose(2, 0, 1)[None]
    scaled = ForteDemoView._resize(image, 64, 96, __import__("cv2").INTER_LANCZOS4)
    np.testing.assert_allclose(scaled[0].transpose(1, 2, 0), golden["resize_image_scaled"], rtol=0, atol=1e-6)
    view = ForteDemoView(post_process=False)
    view.forward(_frame(np.zeros((50, 70, 3), np.float32), [Click(3, 4, True)]))
    back = view.inverse(torch.from_numpy(golden["resize_alpha_net"])[None, None])
    np.testing.assert_allclose(back[0, 0].numpy(), golden["resize_alpha_back"], rtol=0, atol=1e-6)


def _frame(image: np.ndarray, prompts: list[Prompt]):
    from iseg.inference.views import Frame

    tensor = torch.from_numpy(image.transpose(2, 0, 1).copy())[None].float()
    return Frame(tensor, torch.zeros_like(tensor[:, :1]), [prompts])


def test_robot_unit_cases(golden: dict[str, np.ndarray]) -> None:
    gt = golden["unit_gt"].astype(np.int8)
    assert forte_next_click(gt, gt.astype(bool)) == Click(19, 29, False)  # no error: bottom-right background
    assert forte_next_click(gt, golden["unit_tie_pred"].astype(bool)) == Click(0, 0, False)  # tie -> background
    assert forte_next_click(gt, golden["unit_two_pred"].astype(bool)) == Click(7, 10, True)  # the larger component


def test_remove_non_fg_connected_keeps_regions_with_a_foreground_click() -> None:
    alpha = np.zeros((10, 12), np.float32)
    alpha[1:4, 1:4], alpha[6:9, 6:9], alpha[0, 11] = 0.9, 0.8, 0.3
    kept = remove_non_fg_connected(alpha, [(2, 2)])
    assert kept[1:4, 1:4].min() == pytest.approx(0.9) and kept[6:9, 6:9].max() == 0 and kept[0, 11] == 0
    np.testing.assert_array_equal(remove_non_fg_connected(alpha, []), alpha)
    forced = force_clicks(alpha, [(7, 7)], [(2, 2), (7, 7)])
    assert forced[2, 2] == 0 and forced[7, 7] == 1  # foreground is written last


class FixturePredictor:
    """The golden loop's deterministic predictor P, followed by the demo's post-processing."""

    def __init__(self, gt: np.ndarray):
        fg = (gt == 1).astype(np.float64)
        self.shifted = np.zeros_like(fg)
        self.shifted[4:, 6:] = fg[:-4, :-6]
        self.rows, self.cols = np.indices(gt.shape)

    def __call__(self, clicks: list[Click]) -> np.ndarray:
        alpha = self.shifted.copy()
        for positive in (True, False):
            for c in clicks:
                if c.is_positive == positive:
                    alpha[(self.rows - c.y) ** 2 + (self.cols - c.x) ** 2 <= 100] = 1.0 if positive else 0.0
        fg = [(int(c.y), int(c.x)) for c in clicks if c.is_positive]
        bg = [(int(c.y), int(c.x)) for c in clicks if not c.is_positive]
        return remove_non_fg_connected(force_clicks(alpha, fg, bg), fg).astype(np.float32)


def test_evaluation_loop_matches_the_reference(golden: dict[str, np.ndarray], golden_json: dict) -> None:
    root = require_shared_dataset("GrabCut")
    settings = ProtocolConfig(max_clicks=10, target_iou=1.01, pred_thr=FORTE_PRED_THR)
    nocs90, nocs85, all_ious = [], [], []
    for run in golden_json["demo_loop"]["runs"]:
        prefix = run["key_prefix"]
        gt = read_grabcut_mask(root / "boundary_GT" / f"{run['image']}.bmp")
        assert list(gt.shape) == run["hw"]
        predictor = FunctionPredictor(FixturePredictor(gt))
        predictor.set_image(None)
        result = evaluate_sample(predictor, gt, settings, ForteClickRobot())
        clicks = [[int(c.y), int(c.x), int(c.is_positive)] for c in result.clicks]
        assert clicks == golden[f"{prefix}clicks_yxc"].tolist(), prefix
        ious = result.inter_union[:, 0] / result.inter_union[:, 1]
        np.testing.assert_allclose(ious, golden[f"{prefix}ious"], rtol=0, atol=1e-12, err_msg=prefix)
        final = predictor.predict(list(result.clicks)) > FORTE_PRED_THR
        np.testing.assert_array_equal(final, golden[f"{prefix}final_alpha"].astype(bool))
        nocs90.append(noc(ious, 0.9, 20))
        nocs85.append(noc(ious, 0.85, 20))
        all_ious.append(ious)
    assert nocs90 == [20, 20, 10, 1, 20] and nocs85 == [20, 20, 1, 1, 20]
    assert np.mean(all_ious) == pytest.approx(0.8581224243, abs=1e-10)


def test_equal_components_resolve_to_the_first_in_row_major_order() -> None:
    from iseg.interaction.forte_robot import largest_component

    mask = np.zeros((8, 8), bool)
    mask[5:7, 0:2] = True  # starts at row 5
    mask[1:3, 5:7] = True  # starts at row 1: first in raster order
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one 8-connected component of 2 pixels
    chosen = largest_component(mask)
    assert chosen[1:3, 5:7].all() and chosen.sum() == 4
    assert largest_component(np.zeros((3, 3), bool)).sum() == 0
