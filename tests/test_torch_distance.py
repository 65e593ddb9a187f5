"""Torch distance transforms and the device training click rule against OpenCV / the host rule."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

from iseg.interaction import device_clicks
from iseg.interaction.device_clicks import ClickBatch, DeviceClickSampler, pick_candidates, sample_click_batch, training_click_candidates
from iseg.interaction.errors import error_distances, padded_distance
from iseg.interaction.next_click import HostClickSampler, sample_next_clicks, write_clicks
from iseg.interaction.prompts import Click
from iseg.interaction.torch_distance import chamfer_distance, column_distance, exact_distance, exact_squared_distance


def random_masks(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    """uint8 (count, H, W): unions of ellipses, with salt noise of a random density flipped in."""
    rows, cols = np.mgrid[:height, :width]
    masks = np.zeros((count, height, width), np.uint8)
    for mask in masks:
        for _ in range(rng.integers(1, 5)):
            cy, cx = rng.integers(0, height), rng.integers(0, width)
            ay, ax = rng.integers(1, height + 1), rng.integers(1, width + 1)
            mask |= (((rows - cy) / ay) ** 2 + ((cols - cx) / ax) ** 2 <= 1).astype(np.uint8)
        mask ^= (rng.random((height, width)) < rng.choice([0.0, 0.002, 0.05, 0.5])).astype(np.uint8)
    return masks


SHAPES = [(37, 53), (48, 31), (1, 9), (7, 1), (2, 2), (60, 80)]


@pytest.mark.parametrize("shape", SHAPES)
def test_exact_distance_equals_opencv_and_scipy(shape):
    masks = random_masks(np.random.default_rng(sum(shape)), 40, *shape)
    masks[0] = 1  # no background but the border
    masks[1] = 0
    got = exact_distance(torch.from_numpy(masks.astype(bool))).numpy()
    squared = exact_squared_distance(torch.from_numpy(masks.astype(bool))).numpy()
    for mask, value, value2 in zip(masks, got, squared):
        scipy64 = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        assert np.array_equal(value, padded_distance(mask, exact=True))
        assert np.array_equal(value, scipy64.astype(np.float32))
        assert np.array_equal(value2, np.round(scipy64**2))


@pytest.mark.parametrize("shape", SHAPES)
def test_chamfer_distance_equals_opencv_bit_for_bit(shape):
    masks = random_masks(np.random.default_rng(100 + sum(shape)), 40, *shape)
    masks[0] = 1
    got = chamfer_distance(torch.from_numpy(masks.astype(bool))).numpy()
    for mask, value in zip(masks, got):
        assert np.array_equal(value, padded_distance(mask, exact=False))


def test_column_distance_counts_the_border_as_background():
    mask = torch.ones(1, 5, 2, dtype=torch.bool)
    mask[0, 3, 1] = False
    assert column_distance(mask)[0].tolist() == [[1, 1], [2, 2], [3, 1], [2, 0], [1, 1]]
    with pytest.raises(ValueError, match="bool"):
        exact_distance(mask.float())
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        chamfer_distance(mask[0])


def test_opencv_transforms_do_not_depend_on_thread_counts():
    """One OpenCV thread would hand the exact transform to IPP (an ulp off at some pixels)."""
    masks = random_masks(np.random.default_rng(7), 20, 90, 120)
    want = exact_distance(torch.from_numpy(masks.astype(bool))).numpy()
    previous = cv2.getNumThreads()
    try:
        for threads in (1, 2):
            cv2.setNumThreads(threads)
            assert all(np.array_equal(padded_distance(m, exact=True), w) for m, w in zip(masks, want))
    finally:
        cv2.setNumThreads(previous)


def random_training_batch(seed: int, batch: int = 24, height: int = 40, width: int = 56):
    rng = np.random.default_rng(seed)
    gt = random_masks(rng, batch, height, width).astype(np.float32)
    gt[gt == 0] = rng.choice([0.0, -1.0], size=int((gt == 0).sum()), p=[0.9, 0.1])  # ignore counts as background
    probs = rng.random((batch, height, width)).astype(np.float32)
    probs = np.where(random_masks(rng, batch, height, width) > 0, 0.49 + 0.5 * probs, 0.49 * probs)
    probs[0] = (gt[0] > 0.5).astype(np.float32)  # a perfect prediction: no click
    probs[1, :5] = 0.49  # exactly the threshold: neither FN nor FP
    return torch.from_numpy(probs).unsqueeze(1), torch.from_numpy(gt).unsqueeze(1)


def host_candidates(probs: torch.Tensor, gt: torch.Tensor) -> tuple[list[np.ndarray], list[bool]]:
    """The host rule's candidate pixels (flat, row-major) and polarity, transcribed from next_click."""
    cands, positives = [], []
    for p, g in zip(probs[:, 0].numpy(), gt[:, 0].numpy() > 0.5):
        fn_dt, fp_dt = error_distances(g, p > 0.49, pred_bg=p < 0.49, exact=False)
        positive = bool(fn_dt.max() > fp_dt.max())
        dt = fn_dt if positive else fp_dt
        cands.append(np.flatnonzero(dt > max(fn_dt.max(), fp_dt.max()) / 2.0))
        positives.append(positive)
    return cands, positives


@pytest.fixture(params=["opencv", "torch"])
def distance_backend(request, monkeypatch):
    """The device rule with either transform: on the CPU it uses OpenCV's unless told otherwise."""
    if request.param == "torch":
        monkeypatch.setattr(device_clicks, "batch_chamfer_distance", chamfer_distance)
    return request.param


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_device_rule_gives_the_host_rule_clicks(seed, distance_backend):
    probs, gt = random_training_batch(seed)
    want_cands, want_positive = host_candidates(probs, gt)
    candidates, positive = training_click_candidates(probs, gt)
    assert [np.flatnonzero(c.numpy().ravel()).tolist() for c in candidates] == [c.tolist() for c in want_cands]
    assert positive.tolist() == want_positive
    assert len(want_cands[0]) == 0
    for rank_of in (lambda n: 0, lambda n: n // 2, lambda n: max(n - 1, 0)):
        ranks = [rank_of(len(c)) for c in want_cands]
        draws = torch.tensor([(r + 0.5) / max(len(c), 1) for r, c in zip(ranks, want_cands)], dtype=torch.float64)
        clicks = sample_click_batch(probs, gt, draws).to_clicks()
        for click, cands, pos, rank in zip(clicks, want_cands, want_positive, ranks):
            if len(cands) == 0:
                assert click is None
                continue
            y, x = divmod(int(cands[rank]), probs.shape[-1])
            assert click == Click(float(y), float(x), pos)


def test_host_rule_draws_are_reproduced_by_rank():
    """The host rule's own random clicks are the device rule's clicks at the ranks it drew."""
    probs, gt = random_training_batch(5)
    host = sample_next_clicks(probs, gt, np.random.default_rng(11))
    cands, _ = host_candidates(probs, gt)
    width = probs.shape[-1]
    ranks = [int(np.flatnonzero(c == int(h.y) * width + int(h.x))[0]) if h else 0 for h, c in zip(host, cands)]
    draws = torch.tensor([(r + 0.5) / max(len(c), 1) for r, c in zip(ranks, cands)], dtype=torch.float64)
    assert sample_click_batch(probs, gt, draws).to_clicks() == host


def test_device_sampler_is_seeded_and_uniform_over_candidates():
    candidates = torch.zeros(4000, 3, 4, dtype=torch.bool)
    candidates[:, 1, 1:4] = True  # three candidates per sample
    draws = torch.rand(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    clicks = pick_candidates(candidates, torch.ones(4000, dtype=torch.bool), draws)
    assert set(clicks.y.tolist()) == {1.0}
    counts = np.bincount(clicks.x.long().numpy(), minlength=4)
    assert counts[0] == 0 and all(1200 < c < 1470 for c in counts[1:])
    probs, gt = random_training_batch(3)
    a, b = DeviceClickSampler(np.random.default_rng(4))(probs, gt), DeviceClickSampler(np.random.default_rng(4))(probs, gt)
    assert a.to_clicks() == b.to_clicks()
    with pytest.raises(ValueError, match="draws must have shape"):
        sample_click_batch(probs, gt, torch.zeros(3))


def test_click_batches_write_the_layout_like_click_lists():
    probs, gt = random_training_batch(9, batch=6)
    points = torch.full((6, 8, 3), -1.0)
    points[:, 0] = torch.tensor([5.0, 6.0, 0.0])
    clicks = HostClickSampler(np.random.default_rng(2))(probs, gt)
    as_list = clicks.to_clicks()
    assert as_list[0] is None and any(c is not None for c in as_list)
    for k in (1, 3):
        assert torch.equal(write_clicks(points, clicks, k), write_clicks(points, as_list, k))
    assert ClickBatch.from_clicks([]).y.shape == (0,)
