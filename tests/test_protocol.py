"""The evaluation protocol against the RITM reference run on all 50 GrabCut masks (clicker_grabcut.json).

The predictor is the fixture's deterministic "ring oracle" (see the fixture README), so clicks,
(intersection, union) counts and float32 IoUs must match exactly, NoC/NoF too, mIoU@k to 1e-6.
"""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest
from scipy import ndimage

from iseg.interaction.clicks import Click
from iseg.interaction.next_click import next_click
from iseg.interaction.metrics import mean_iou_curve, noc, noc_thresholds
from tests.conftest import FIXTURES, require_shared_dataset
from tests.protocol_helpers import evaluate_pairs, evaluate_with

GOLDEN = FIXTURES / "golden" / "protocol" / "clicker_grabcut.json"
TARGETS = {"stop_at_0.90": 0.90, "always_20": 1.01}


def read_grabcut_mask(path) -> np.ndarray:
    """GrabCut boundary_GT as the reference decodes it: channel 0, 128 -> ignore (-1), > 128 -> 1."""
    raw = cv2.imread(str(path))
    if raw is None:
        raise FileNotFoundError(path)
    raw = raw[:, :, 0]
    gt = np.zeros(raw.shape, dtype=np.int8)
    gt[raw == 128] = -1
    gt[raw > 128] = 1
    return gt


class RingOracle:
    """The fixture's oracle: foreground within R = 20*k of a positive click, within 6 px of the
    object (exact EDT), and outside 15 px of every negative click. Incremental per new click."""

    def __init__(self, gt: np.ndarray):
        self.near_object = cv2.distanceTransform((gt != 1).astype(np.uint8), cv2.DIST_L2, 0) <= 6
        self.rows = np.arange(gt.shape[0], dtype=np.int64)[:, None]
        self.cols = np.arange(gt.shape[1], dtype=np.int64)[None, :]
        self.nearest_positive_d2 = np.full(gt.shape, np.iinfo(np.int64).max, dtype=np.int64)
        self.near_negative = np.zeros(gt.shape, dtype=bool)
        self.seen: list[Click] = []

    def __call__(self, clicks: list[Click]) -> np.ndarray:
        assert clicks[: len(self.seen)] == self.seen, "the protocol must only append clicks"
        for click in clicks[len(self.seen) :]:
            d2 = (self.rows - int(click.y)) ** 2 + (self.cols - int(click.x)) ** 2
            if click.is_positive:
                np.minimum(self.nearest_positive_d2, d2, out=self.nearest_positive_d2)
            else:
                self.near_negative |= d2 <= 15**2
        self.seen = list(clicks)
        radius = 20 * len(clicks)
        fg = (self.nearest_positive_d2 <= radius**2) & self.near_object & ~self.near_negative
        return fg.astype(np.float32)


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def grabcut_masks(golden) -> list[np.ndarray]:
    root = require_shared_dataset("GrabCut")
    samples = golden["runs"]["always_20"]["samples"]
    stems = [p.stem for p in sorted((root / "data_GT").iterdir())]
    assert stems == [s["image"].rsplit(".", 1)[0] for s in samples], "sample order must be the sorted image names"
    masks = [read_grabcut_mask(root / "boundary_GT" / s["mask"]) for s in samples]
    for gt, s in zip(masks, samples):
        assert list(gt.shape) == s["shape"]
        assert int((gt == 1).sum()) == s["n_object"] and int((gt == -1).sum()) == s["n_ignore"]
    return masks


@pytest.mark.parametrize("run", sorted(TARGETS))
def test_ring_oracle_run_matches_reference(golden, grabcut_masks, run):
    expected = golden["runs"][run]
    start = time.perf_counter()
    result = evaluate_pairs(
        [(gt, gt) for gt in grabcut_masks], RingOracle, max_clicks=20, target_iou=TARGETS[run], min_clicks=1
    )
    elapsed = time.perf_counter() - start
    for got, want in zip(result.samples, expected["samples"], strict=True):
        assert [[c.y, c.x, int(c.is_positive)] for c in got.clicks] == want["clicks"], want["image"]
        assert got.inter_union.tolist() == want["inter_union"], want["image"]
        assert got.ious.dtype == np.float32
        np.testing.assert_array_equal(got.ious, np.array(want["ious"], dtype=np.float32), err_msg=want["image"])
        for name, value in want["NoC"].items():
            assert noc(got.ious, int(name) / 100) == value, (want["image"], name)

    metrics = expected["metrics"]
    assert noc_thresholds(TARGETS[run]) == metrics["iou_thrs_used"]
    for key, value in metrics.items():
        if key.startswith(("NoC@", "NoF@")):
            assert result.summary[key] == value, key
    curve = mean_iou_curve([r.ious for r in result.samples])
    assert len(curve) == metrics["mIoU_num_clicks"]
    want_curve = [metrics["mIoU@k"][str(k)] for k in range(1, len(curve) + 1)]
    np.testing.assert_allclose(curve, want_curve, rtol=0, atol=1e-6)
    for k in (1, 2, 3, 5, 10, 20):
        assert (f"mIoU@{k}" in result.summary) == (k <= len(curve))
    assert result.num_clicks == sum(len(s["ious"]) for s in expected["samples"])
    # the reference took 16 s for both runs; a generous bound that only catches pathological slowness
    assert elapsed < 60, f"protocol too slow: {elapsed:.1f} s for {result.num_clicks} clicks"


def test_early_stop_and_min_clicks():
    """A perfect predictor stops after click 1 unless min_clicks asks for more; 1.01 never stops."""
    gt = np.zeros((20, 30), dtype=np.int8)
    gt[5:15, 8:20] = 1

    def perfect(clicks: list[Click]) -> np.ndarray:
        return (gt == 1).astype(np.float32)

    assert len(evaluate_with(perfect, gt).ious) == 1
    result = evaluate_with(perfect, gt, min_clicks=3)
    assert result.ious.tolist() == [1.0, 1.0, 1.0]
    # after a perfect mask the clicker issues negative clicks at (0, 0)
    assert [(c.y, c.x, c.is_positive) for c in result.clicks[1:]] == [(0, 0, False), (0, 0, False)]
    assert len(evaluate_with(perfect, gt, max_clicks=5, target_iou=1.01).ious) == 5


def test_target_compared_in_float64():
    """IoU 8/9 = 0.888... stops at target 0.8888888 but not at float32(8/9) promoted to float64."""
    gt = np.zeros((3, 3), dtype=np.int8)
    gt[:] = 1
    pred = np.ones((3, 3), dtype=np.float32)
    pred[0, 0] = 0
    value32 = float(np.float32(8 / 9))
    assert value32 > 8 / 9  # so a float32 comparison would stop, a float64 one must not
    result = evaluate_with(lambda clicks: pred, gt, max_clicks=3, target_iou=value32)
    assert len(result.ious) == 3 and result.ious[0] == np.float32(8 / 9)
    assert len(evaluate_with(lambda clicks: pred, gt, max_clicks=3, target_iou=8 / 9).ious) == 1


def test_predictor_shape_is_checked():
    gt = np.ones((4, 5), dtype=np.int8)
    with pytest.raises(ValueError, match=r"predict returned shape \(5, 4\)"):
        evaluate_with(lambda clicks: np.zeros((5, 4)), gt)
    with pytest.raises(ValueError, match="max_clicks"):
        evaluate_with(lambda clicks: np.zeros((4, 5)), gt, max_clicks=0)


def test_boundary_metrics_follow_the_clicks_and_leave_them_unchanged():
    """With boundary metrics: the same clicks and IoUs, one BIoU and ASSD per IoU, and mBIoU@k /
    ASSD@k in the dataset summary."""
    gt = np.zeros((40, 60), dtype=np.int8)
    gt[10:30, 15:45] = 1
    gt[8:10, 15:45] = -1
    gts = [gt, np.where(gt == -1, 0, gt).astype(np.int8)]
    samples = [(mask, mask) for mask in gts]  # the oracle is built from the "image", here its GT
    kwargs = {"max_clicks": 6, "target_iou": 0.9}
    plain = evaluate_pairs(samples, RingOracle, **kwargs)
    boundary = evaluate_pairs(samples, RingOracle, boundary_metrics=True, **kwargs)
    for a, b in zip(plain.samples, boundary.samples):
        assert a.clicks == b.clicks and np.array_equal(a.ious, b.ious) and a.bious is None
        assert len(b.bious) == len(b.assds) == len(b.ious) and b.bious.dtype == np.float32
    shortest = min(len(s.ious) for s in boundary.samples)
    expected_keys = {f"{name}@{k}" for name in ("mBIoU", "ASSD") for k in (1, 2, 3, 5) if k <= shortest}
    assert set(boundary.summary) - set(plain.summary) == expected_keys
    # the values are those of the thresholded masks, click by click
    from iseg.interaction.boundary_metrics import BoundaryMetrics

    oracle, metrics, first = RingOracle(gts[0]), BoundaryMetrics(gts[0]), boundary.samples[0]
    replay = [metrics(oracle(first.clicks[: k + 1]) > 0.49) for k in range(len(first.clicks))]
    np.testing.assert_array_equal(first.bious, np.float32([biou for biou, _ in replay]))
    np.testing.assert_array_equal(first.assds, np.float32([distance for _, distance in replay]))


@pytest.fixture(params=[1, 2], ids=["cv2_1_thread", "cv2_2_threads"])
def cv2_threads(request):
    """Runs set ``cv2.setNumThreads(1)``, under which OpenCV would hand the exact transform to IPP
    (an ulp off at some pixels, which moves first-maximum ties)."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(request.param)
    yield request.param
    cv2.setNumThreads(previous)


def test_first_maximum_does_not_depend_on_opencv_threads(cv2_threads):
    """Three overlapping rectangles: IPP's transform would put the first maximum one row lower."""
    gt = np.zeros((125, 100), dtype=np.int8)
    for top, bottom, left, right in ((90, 108, 36, 69), (60, 106, 80, 130), (67, 143, 14, 57)):
        gt[top:bottom, left:right] = 1
    dt = ndimage.distance_transform_edt(np.pad(gt == 1, 1))[1:-1, 1:-1]
    assert dt[98, 36] == dt.max() and dt[:98].max() < dt.max()
    assert next_click(gt, np.zeros(gt.shape, dtype=bool), []) == Click(98, 36, True)


def test_golden_clicks_do_not_depend_on_opencv_threads(golden, grabcut_masks, cv2_threads):
    expected = golden["runs"]["always_20"]["samples"][:10]
    result = evaluate_pairs([(gt, gt) for gt in grabcut_masks[:10]], RingOracle, max_clicks=20, target_iou=1.01)
    for got, want in zip(result.samples, expected, strict=True):
        assert [[c.y, c.x, int(c.is_positive)] for c in got.clicks] == want["clicks"], want["image"]
