"""Next-click rules: the protocol clicker (deterministic) and the training rule (random, seeded)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

from iseg.interaction.clicks import Click
from iseg.interaction.next_click import Clicker, next_click, sample_next_clicks, sample_next_points


def ellipse_gt() -> np.ndarray:
    """Open ellipse centred at (120, 150), semi-axes 60 (rows) x 90 (columns), on 240 x 320."""
    rows, cols = np.mgrid[:240, :320]
    return (((rows - 120) / 60) ** 2 + ((cols - 150) / 90) ** 2 < 1).astype(np.int8)


def scipy_next_click(gt: np.ndarray, pred: np.ndarray, clicked: list[tuple[int, int]]) -> tuple[int, int, bool]:
    """Independent version of the protocol rule with scipy's exact EDT (as f-BRS computes it)."""
    valid = gt != -1
    dts = []
    for region in (valid & (gt == 1) & ~pred, valid & (gt != 1) & pred):
        dt = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
        for y, x in clicked:
            dt[y, x] = 0
        dts.append(dt)
    is_positive = dts[0].max() > dts[1].max()
    dt = dts[0] if is_positive else dts[1]
    ys, xs = np.where(dt == dt.max())
    return int(ys[0]), int(xs[0]), bool(is_positive)


# --- protocol rule ----------------------------------------------------------------------------


def test_ellipse_example_from_the_reference():
    """Left end of the max-distance ridge first, then its neighbours as clicked pixels are zeroed."""
    gt = ellipse_gt()
    empty = np.zeros(gt.shape, dtype=bool)
    clicker = Clicker(gt)
    got = [clicker.make_next_click(empty) for _ in range(4)]
    expected = [(120, 144, True), (120, 145, True), (120, 146, True), (120, 147, True)]
    assert [(c.y, c.x, c.is_positive) for c in got] == expected
    # the stateless function gives the same sequence from the click history
    assert next_click(gt, empty, got[:2]) == got[2]


def test_tie_gives_negative_click():
    gt = np.zeros((30, 40), dtype=np.int8)
    gt[2:9, 2:9] = 1  # 7x7 object, entirely missed: FN of depth 4
    pred = np.zeros(gt.shape, dtype=bool)
    pred[20:27, 30:37] = True  # 7x7 false positive: same depth 4
    assert next_click(gt, pred, []) == Click(23, 33, False)
    pred[20, 30:37] = False  # 6x7 false positive: depth 3 < 4 -> positive
    assert next_click(gt, pred, []) == Click(5, 5, True)
    pred[17:29, 28:39] = True  # 12x11 false positive: depth 6 > 4 -> negative
    assert next_click(gt, pred, []) == Click(22, 33, False)


def test_perfect_prediction_gives_negative_click_at_origin():
    gt = np.zeros((10, 12), dtype=np.int8)
    gt[3:7, 4:9] = 1
    gt[0, 5] = -1
    pred = gt == 1
    assert next_click(gt, pred, [Click(0, 0, False)]) == Click(0, 0, False)


def test_ignore_pixels_are_excluded_from_errors():
    gt = np.full((20, 20), -1, dtype=np.int8)
    gt[5:15, 5:15] = 1  # object surrounded by ignore
    pred = np.ones(gt.shape, dtype=bool)  # all foreground: only ignore pixels are "wrong"
    assert next_click(gt, pred, []) == Click(0, 0, False)  # no error at all
    gt[0:3, :] = 0  # a 3-row background strip: FP of depth 2 (ignore acts as a border)
    assert next_click(gt, pred, []) == Click(1, 1, False)


def test_matches_independent_scipy_rule_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(40):
        h, w = rng.integers(8, 40, size=2)
        gt = (ndimage.gaussian_filter(rng.random((h, w)), 2) > 0.5).astype(np.int8)
        gt[rng.random((h, w)) < 0.1] = -1
        pred = ndimage.gaussian_filter(rng.random((h, w)), 2) > 0.5
        clicks = []
        for _ in range(4):
            want = scipy_next_click(gt, pred, [(int(c.y), int(c.x)) for c in clicks])
            got = next_click(gt, pred, clicks)
            assert (got.y, got.x, got.is_positive) == want
            clicks.append(got)


def test_bad_protocol_input_is_reported():
    gt = np.zeros((5, 5), dtype=np.int8)
    with pytest.raises(ValueError, match=r"values must be 1, 0 or -1.*\[2\]"):
        next_click(np.full((5, 5), 2), np.zeros((5, 5), bool), [])
    with pytest.raises(ValueError, match="pred_mask shape"):
        next_click(gt, np.zeros((5, 6), bool), [])
    with pytest.raises(ValueError, match="pred_mask must be binary"):
        next_click(gt, np.full((5, 5), 0.3), [])
    assert next_click(gt, np.ones((5, 5), np.uint8), []) == Click(2, 2, False)
    with pytest.raises(ValueError, match="not an integer pixel"):
        next_click(gt, np.zeros((5, 5), bool), [Click(1.5, 2, True)])
    with pytest.raises(ValueError, match="not an integer pixel"):
        next_click(gt, np.zeros((5, 5), bool), [Click(5, 0, True)])


# --- training rule ----------------------------------------------------------------------------


def reference_style_points(probs, gt, points, k, rs: np.random.RandomState):
    """Straight transcription of the documented training rule, for comparison (batch loop, mask 5)."""
    probs, gt_fg, points = probs[:, 0].numpy(), gt[:, 0].numpy() > 0.5, points.clone()
    n = points.shape[1] // 2
    for b in range(len(probs)):
        fn = np.pad(gt_fg[b] & (probs[b] < 0.49), 1).astype(np.uint8)
        fp = np.pad(~gt_fg[b] & (probs[b] > 0.49), 1).astype(np.uint8)
        fn_dt = cv2.distanceTransform(fn, cv2.DIST_L2, 5)[1:-1, 1:-1]
        fp_dt = cv2.distanceTransform(fp, cv2.DIST_L2, 5)[1:-1, 1:-1]
        positive = fn_dt.max() > fp_dt.max()
        cand = np.argwhere((fn_dt if positive else fp_dt) > max(fn_dt.max(), fp_dt.max()) / 2)
        if len(cand):
            y, x = cand[rs.randint(0, len(cand))]
            points[b, n - k if positive else 2 * n - k] = torch.tensor([float(y), float(x), float(k)])
    return points


def random_batch(seed: int, batch: int = 4, size: tuple[int, int] = (24, 32)):
    rng = np.random.default_rng(seed)
    gt = (ndimage.gaussian_filter(rng.random((batch, 1, *size)), (0, 0, 3, 3)) > 0.5).astype(np.float32)
    gt[rng.random(gt.shape) < 0.05] = -1
    probs = ndimage.gaussian_filter(rng.random((batch, 1, *size)), (0, 0, 3, 3)).astype(np.float32)
    probs = (probs - probs.min()) / (probs.max() - probs.min())
    return torch.from_numpy(probs), torch.from_numpy(gt)


def test_seeded_rule_matches_transcription_and_is_reproducible():
    points = torch.full((4, 6, 3), -1.0)
    points[:, 0] = torch.tensor([3.0, 4.0, 100.0])
    for seed in range(5):
        probs, gt = random_batch(seed)
        got = sample_next_points(probs, gt, points, 1, np.random.RandomState(seed))
        want = reference_style_points(probs, gt, points, 1, np.random.RandomState(seed))
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        again = sample_next_points(probs, gt, points, 1, np.random.RandomState(seed))
        torch.testing.assert_close(got, again, rtol=0, atol=0)
        gen_a = sample_next_points(probs, gt, points, 2, np.random.default_rng(seed))
        gen_b = sample_next_points(probs, gt, points, 2, np.random.default_rng(seed))
        torch.testing.assert_close(gen_a, gen_b, rtol=0, atol=0)


def test_click_slots_overwrite_and_order():
    n = 3
    gt = torch.zeros(2, 1, 20, 20)
    gt[0, 0, 5:15, 5:15] = 1  # sample 0: object missed -> positive
    probs = torch.zeros(2, 1, 20, 20)
    probs[1, 0, 2:18, 2:18] = 0.9  # sample 1: false positive -> negative
    points = torch.arange(2 * 2 * n * 3, dtype=torch.float32).view(2, 2 * n, 3)
    for k in (1, 2, 3):
        out = sample_next_points(probs, gt, points, k, np.random.default_rng(k))
        changed = (out != points).any(dim=2)
        assert changed[0].nonzero().flatten().tolist() == [n - k]
        assert changed[1].nonzero().flatten().tolist() == [2 * n - k]
        assert out[0, n - k, 2] == k and out[1, 2 * n - k, 2] == k
        assert torch.equal(points, torch.arange(36, dtype=torch.float32).view(2, 6, 3))  # input untouched
    with pytest.raises(ValueError, match="click_index must be in 1..3"):
        sample_next_points(probs, gt, points, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="click_index must be in 1..3"):
        sample_next_points(probs, gt, points, 0, np.random.default_rng(0))


def test_click_lands_deep_inside_the_larger_error():
    """A 21x21 missed square: chamfer depth 1..11, candidates are depth >= 6, the inner 11x11."""
    gt = torch.zeros(1, 1, 40, 50)
    gt[0, 0, 10:31, 20:41] = 1
    probs = torch.zeros(1, 1, 40, 50)
    probs[0, 0, 0:3, 0:3] = 1.0  # small false positive: FN wins
    rng = np.random.RandomState(7)
    hits = set()
    for _ in range(1500):
        (click,) = sample_next_clicks(probs, gt, rng)
        assert click.is_positive
        hits.add((int(click.y), int(click.x)))
    assert hits == {(y, x) for y in range(15, 26) for x in range(25, 36)}


def test_training_rule_uses_the_chamfer_transform():
    """A missed disk of radius 14: the 5x5 chamfer DT gives 165 candidates, the exact EDT 161.

    (OpenCV's own fixed-point chamfer, which the rule uses at any thread count; IPP's float
    version, which pip builds of OpenCV call by default, puts 12 more pixels above half the
    maximum: 177.)
    """
    rows, cols = np.mgrid[:64, :64]
    disk = torch.from_numpy((((rows - 32) ** 2 + (cols - 32) ** 2) <= 14**2).astype(np.float32))
    gt = disk.expand(3000, 1, 64, 64)
    clicks = sample_next_clicks(torch.zeros_like(gt), gt, np.random.default_rng(3))
    hits = {(int(c.y), int(c.x)) for c in clicks}
    assert all(c.is_positive for c in clicks)
    assert len(hits) == 165
    assert all(disk[y, x] == 1 for y, x in hits)


def test_no_candidate_leaves_points_unchanged():
    gt = torch.zeros(2, 1, 10, 10)
    gt[:, :, 2:6, 2:6] = 1
    probs = gt.clone()  # perfect
    probs[1, 0, 0, 0] = 0.49  # exactly at the threshold: neither FP nor FN
    points = torch.full((2, 4, 3), -1.0)
    assert sample_next_clicks(probs, gt, np.random.default_rng(0)) == [None, None]
    assert torch.equal(sample_next_points(probs, gt, points, 1, np.random.default_rng(0)), points)


def test_training_rule_treats_ignore_as_background():
    gt = torch.full((1, 1, 12, 12), -1.0)
    gt[0, 0, 4:8, 4:8] = 1
    probs = torch.ones(1, 1, 12, 12)  # predicted everywhere: ignore pixels become false positives
    (click,) = sample_next_clicks(probs, gt, np.random.default_rng(0))
    assert click is not None and not click.is_positive
    assert gt[0, 0, int(click.y), int(click.x)] == -1
    # the protocol rule instead sees no error at all
    assert next_click(gt[0, 0].numpy().astype(np.int8), np.ones((12, 12), bool), []) == Click(0, 0, False)


def test_bad_training_input_is_reported():
    probs, gt = random_batch(0, batch=2)
    with pytest.raises(ValueError, match="gt shape"):
        sample_next_clicks(probs, gt[:1], np.random.default_rng(0))
    with pytest.raises(ValueError, match="points must have shape"):
        sample_next_points(probs, gt, torch.zeros(2, 5, 3), 1, np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng must be"):
        sample_next_clicks(probs, gt, 0)
