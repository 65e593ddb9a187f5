"""MultiPointSampler: count and strategy distributions, click regions, merging, centre clicks, padding."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from iseg.data.sample import InstanceSample
from iseg.interaction.sampler import MultiPointSampler, center_click_candidates, generate_probs

H, W = 64, 96
RELEASED = dict(max_num_points=24, prob_gamma=0.8, merge_objects_prob=0.15, max_num_merged_objects=2)


def _sample(with_ignore: bool = False) -> InstanceSample:
    """Target-ish square (value 1), a far-away box (value 2), a third blob (value 3), optional ignore."""
    labels = np.zeros((H, W), np.uint8)
    labels[10:40, 10:40] = 1
    labels[45:60, 60:90] = 2
    labels[5:20, 70:90] = 3
    if with_ignore:
        labels[0:8, 0:50] = 255
    image = np.zeros((H, W, 3), np.uint8)
    return InstanceSample.from_label_map(image, labels, ignore_values=[255] if with_ignore else [], name="s")


def _one_object_sample() -> InstanceSample:
    labels = np.zeros((H, W), np.uint8)
    labels[10:40, 10:40] = 1
    return InstanceSample.from_label_map(np.zeros((H, W, 3), np.uint8), labels)


def _split(points: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    pos, neg = points[:n], points[n:]
    return pos[pos[:, 0] >= 0], neg[neg[:, 0] >= 0]


def _draw(sampler: MultiPointSampler, sample: InstanceSample, draws: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [sampler(sample, rng) for _ in range(draws)]


def test_generate_probs_matches_the_reference_numbers() -> None:
    probs = generate_probs(24, 0.8)
    assert probs.sum() == pytest.approx(1.0)
    assert probs[:3] == pytest.approx([0.201, 0.161, 0.129], abs=5e-4)
    assert (1 + np.arange(24)) @ probs == pytest.approx(4.89, abs=0.01)
    assert np.arange(25) @ generate_probs(25, 0.8) == pytest.approx(3.91, abs=0.01)


def test_output_layout_padding_and_order_column() -> None:
    sampler = MultiPointSampler(**RELEASED)
    for gt, points in _draw(sampler, _sample(), 200):
        assert gt.shape == (H, W) and gt.dtype == np.int32
        assert points.shape == (48, 3) and points.dtype == np.float32
        for half in (points[:24], points[24:]):
            valid = half[:, 0] >= 0
            assert (half[~valid] == -1).all(), "unused rows are (-1, -1, -1)"
            assert np.flatnonzero(valid).tolist() == list(range(valid.sum())), "clicks first, padding after"
            assert (half[valid, 2] == 100).all()
            assert (half[valid, 0] < H).all() and (half[valid, 1] < W).all()


def test_click_counts_follow_generate_probs() -> None:
    sampler = MultiPointSampler(max_num_points=24, prob_gamma=0.8)
    draws = _draw(sampler, _one_object_sample(), 3000)
    pos_counts = np.array([len(_split(p, 24)[0]) for _, p in draws])
    neg_counts = np.array([len(_split(p, 24)[1]) for _, p in draws])
    pos_freq = np.bincount(pos_counts - 1, minlength=24) / len(draws)
    neg_freq = np.bincount(neg_counts, minlength=25) / len(draws)
    assert np.abs(pos_freq - generate_probs(24, 0.8)).max() < 0.025
    assert np.abs(neg_freq - generate_probs(25, 0.8)).max() < 0.025
    assert pos_counts.mean() == pytest.approx(4.89, abs=0.25)


def test_negative_strategy_frequencies() -> None:
    """Target = one of three objects (no merging); check where negatives land against 0.1/0.4/0.5."""
    sampler = MultiPointSampler(max_num_points=24, prob_gamma=0.8)
    sample = _sample()
    in_other = in_border = total = 0
    expected_other = expected_border = 0.0
    for gt, points in _draw(sampler, sample, 1500):
        target = gt == 1
        radius = int(np.ceil(0.1 * np.sqrt(target.sum())))
        dilated = cv2.dilate(target.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=radius)
        border = dilated.astype(bool) & ~target
        other = ~sample.background_mask & ~target
        bg = ~target
        _, neg = _split(points, 24)
        ys, xs = neg[:, 0].astype(int), neg[:, 1].astype(int)
        in_other += int(other[ys, xs].sum())
        in_border += int((border & ~other)[ys, xs].sum())
        total += len(neg)
        # a 'bg' click can also land on other objects or in the border band
        lone_border = border & ~other
        expected_other += len(neg) * (0.4 + 0.1 * other.sum() / bg.sum() + 0.5 * (border & other).sum() / border.sum())
        expected_border += len(neg) * (0.5 * lone_border.sum() / border.sum() + 0.1 * lone_border.sum() / bg.sum())
    assert total > 3000
    assert in_other / total == pytest.approx(expected_other / total, abs=0.03)
    assert in_border / total == pytest.approx(expected_border / total, abs=0.03)


def test_positives_inside_eroded_object_and_negatives_outside_gt() -> None:
    sample = _sample()
    eroded = MultiPointSampler(max_num_points=24, positive_erode_prob=1.0)
    plain = MultiPointSampler(max_num_points=24, positive_erode_prob=0.0)
    kernel = np.ones((3, 3), np.uint8)
    rim_hits = 0
    for sampler, must_erode in ((eroded, True), (plain, False)):
        for gt, points in _draw(sampler, sample, 300):
            pos, neg = _split(points, 24)
            target = gt == 1
            core = cv2.erode(target.astype(np.uint8), kernel, iterations=3).astype(bool)
            assert target[pos[:, 0].astype(int), pos[:, 1].astype(int)].all()
            assert not target[neg[:, 0].astype(int), neg[:, 1].astype(int)].any()
            on_rim = ~core[pos[:, 0].astype(int), pos[:, 1].astype(int)]
            if must_erode:
                assert not on_rim.any()
            else:
                rim_hits += int(on_rim.sum())
    assert rim_hits > 0, "without erosion some positives fall on the object's rim"


def test_clicks_avoid_ignore_regions() -> None:
    sample = _sample(with_ignore=True)
    for gt, points in _draw(MultiPointSampler(**RELEASED), sample, 300):
        assert (gt[sample.ignore_mask] == -1).all()
        valid = points[points[:, 0] >= 0]
        assert not sample.ignore_mask[valid[:, 0].astype(int), valid[:, 1].astype(int)].any()


def test_first_click_center_lands_deep_inside() -> None:
    sampler = MultiPointSampler(max_num_points=24, positive_erode_prob=0.0, first_click_center=True)
    sample = _sample()
    for gt, points in _draw(sampler, sample, 200):
        pos, _ = _split(points, 24)
        assert pos[0, 2] == 0 and (pos[1:, 2] == 100).all()
        target = np.pad((gt == 1).astype(np.uint8), 1)
        dt = cv2.distanceTransform(target, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
        assert dt[int(pos[0, 0]), int(pos[0, 1])] > dt.max() / 1.7
    square = np.zeros((H, W), bool)
    square[10:40, 10:40] = True
    candidates = center_click_candidates(square)
    assert candidates[25, 25] and not candidates[11, 11] and candidates.sum() < square.sum() / 2


def test_merged_objects() -> None:
    sample = _sample()
    objects = [sample.get_object_mask(i) == 1 for i in range(3)]
    sampler = MultiPointSampler(max_num_points=24, merge_objects_prob=1.0, max_num_merged_objects=2)
    for gt, points in _draw(sampler, sample, 200):
        covered = [bool((gt[obj] == 1).all()) for obj in objects]
        assert sum(covered) == 2 and (gt == 1).sum() == sum(o.sum() for o, c in zip(objects, covered) if c)
        pos, neg = _split(points, 24)
        owners = [next(i for i, o in enumerate(objects) if o[int(y), int(x)]) for y, x, _ in pos]
        assert len(pos) >= 2 and owners[0] != owners[1], "first click of each merged object comes first"
        assert all(covered[i] for i in owners)
        assert not (gt == 1)[neg[:, 0].astype(int), neg[:, 1].astype(int)].any()
    up_to_all = MultiPointSampler(max_num_points=24, merge_objects_prob=1.0, max_num_merged_objects=-1)
    sizes = {int(((gt == 1).sum())) for gt, _ in _draw(up_to_all, sample, 200)}
    assert sum(o.sum() for o in objects) in sizes, "-1 allows merging every root"
    released = _draw(MultiPointSampler(**RELEASED), sample, 2000)
    merged = np.mean([not any(((gt == 1) == o).all() for o in objects) for gt, _ in released])
    assert merged == pytest.approx(0.15, abs=0.025)


def test_empty_sample_gives_zero_gt_and_background_negatives() -> None:
    labels = np.zeros((H, W), np.uint8)
    labels[10:20, 10:20] = 4  # an object that min-area pruning removed: its pixels stay "not background"
    labels[30:40, 30:40] = 255
    sample = InstanceSample.from_label_map(np.zeros((H, W, 3), np.uint8), labels, ignore_values=[255])
    sample.remove_small_objects(1000)
    assert len(sample) == 0
    count = 0
    for gt, points in _draw(MultiPointSampler(**RELEASED), sample, 200):
        pos, neg = _split(points, 24)
        assert (gt == 0).all() and len(pos) == 0
        assert sample.background_mask[neg[:, 0].astype(int), neg[:, 1].astype(int)].all()
        count += len(neg)
    assert count > 0


def test_seeded_reproducibility() -> None:
    sampler = MultiPointSampler(**RELEASED, first_click_center=True)
    first = _draw(sampler, _sample(), 20, seed=5)
    again = _draw(sampler, _sample(), 20, seed=5)
    other = _draw(sampler, _sample(), 20, seed=6)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(first, other))


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="must be 1"):
        MultiPointSampler(negative_bg_prob=0.5)
    with pytest.raises(ValueError, match="max_num_points"):
        MultiPointSampler(max_num_points=0)
