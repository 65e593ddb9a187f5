"""S2M's training-time scribble simulation: statistics against the reference, invariants, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from iseg.data.sample import InstanceSample
from iseg.interaction.scribbles.perturb import mask_iou, perturb_mask
from iseg.interaction.scribbles.sampler import S2MSampler
from iseg.interaction.scribbles.simulate import ScribbleSimulation
from iseg.interaction.scribbles.skeleton import SkeletonRobot, bezier_through, centred_disk, longest_paths
from iseg.interaction.scribbles.strokes import quadratic_bezier

FIXTURES = Path(__file__).parent / "fixtures"
STATS = FIXTURES / "golden" / "protocol" / "s2m_scribble_stats.json"
MASKS = ("21077", "llama", "teddy")
DRAWS_PER_MASK = 60  # ~0.07 s per draw on one core; 180 draws keep every checked group's SE well inside the bounds


def _gt(name: str) -> np.ndarray:
    return cv2.imread(str(FIXTURES / "s2m" / f"{name}_gt.png"), cv2.IMREAD_GRAYSCALE) > 128


def _draws(seed: int) -> list[dict]:
    simulation, rng, rows = ScribbleSimulation(), np.random.default_rng(seed), []
    for name in MASKS:
        gt = _gt(name)
        for _ in range(DRAWS_PER_MASK):
            prev, from_zero, _ = simulation.previous_mask(gt, rng)
            pos, neg, robot = simulation.scribbles(prev, gt, from_zero, rng)
            pos, neg = pos.astype(bool), neg.astype(bool)
            rows.append({
                "from_zero": from_zero, "robot": robot, "pos": pos.sum(), "neg": neg.sum(),
                "pos_in_gt": (pos & gt).sum(), "neg_out_gt": (neg & ~gt).sum(),
                "pos_in_fn": (pos & ~prev & gt).sum(), "neg_in_fp": (neg & prev & ~gt).sum(),
            })
    return rows


@pytest.fixture(scope="module")
def draws():
    return _draws(seed=27182818)


GROUPS = {
    "all": lambda r: True,
    "from_zero": lambda r: r["from_zero"],
    "not_from_zero": lambda r: not r["from_zero"],
    "robot": lambda r: r["robot"],
}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_scribble_statistics_match_the_reference_within_their_noise(draws, group, one_thread):
    reference = json.loads(STATS.read_text())["pooled"][group]
    rows = [r for r in draws if GROUPS[group](r)]
    n = len(rows)

    def column(key: str) -> np.ndarray:
        return np.array([r[key] for r in rows], np.float64)

    for key in ("pos", "neg"):
        ours, ref_mean, ref_std = column(key), reference[f"mean_{key}_px"], reference[f"std_{key}_px"]
        # mean pixel counts within 25 % of the reference, or 4 standard errors of the difference when that is wider
        noise = 4 * np.sqrt(ours.var() / n + ref_std**2 / reference["n"])
        assert abs(ours.mean() - ref_mean) <= max(0.25 * ref_mean, noise), (group, key, ours.mean(), ref_mean)
    pos, neg = column("pos").sum(), column("neg").sum()
    assert column("pos_in_gt").sum() / pos >= 0.93
    if neg:
        assert column("neg_out_gt").sum() / neg >= 0.93
    assert not any(r["pos"] == 0 and r["neg"] == 0 for r in rows)  # P(both empty) = 0
    if group == "robot":  # the robot's strokes follow the errors of the previous mask (reference: 0.92 both)
        assert column("pos_in_fn").sum() / pos >= 0.85 and column("neg_in_fp").sum() / neg >= 0.85
    if group == "from_zero":  # negatives only from the GT-only extras (probability 0.3): P(neg empty) ~ 0.7
        empty = np.mean(column("neg") == 0)
        assert abs(empty - reference["frac_samples_neg_empty"]) <= 4 * np.sqrt(0.7 * 0.3 / n)
        assert column("pos_in_fn").sum() / pos == column("pos_in_gt").sum() / pos


def test_branch_probabilities_are_the_references(draws):
    n = len(draws)
    from_zero = np.mean([r["from_zero"] for r in draws])
    assert abs(from_zero - 0.33) <= 4 * np.sqrt(0.33 * 0.67 / n)
    not_zero = [r for r in draws if not r["from_zero"]]
    robot = np.mean([r["robot"] for r in not_zero])
    assert abs(robot - 0.75) <= 4 * np.sqrt(0.75 * 0.25 / len(not_zero))


def test_perturbation_stops_just_below_the_target_iou():
    gt = _gt("teddy")
    rng = np.random.default_rng(0)
    for target in (0.9, 0.75, 0.6):
        prev = perturb_mask(gt, target, rng)
        assert prev.dtype == bool and prev.shape == gt.shape
        assert target - 0.2 < mask_iou(prev, gt) < target
    assert perturb_mask(np.ones((2, 5), np.uint8), 0.5, rng).all()  # too small to perturb: unchanged


def _dilated(mask: np.ndarray, size: int) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), np.ones((size, size), np.uint8)).astype(bool)


def _boxes(shape=(96, 128)):
    """gt: a rectangle; prev: the same rectangle moved right, so FN (left) and FP (right) are convex strips."""
    gt, prev = np.zeros(shape, bool), np.zeros(shape, bool)
    gt[20:76, 20:80] = True
    prev[20:76, 44:104] = True
    return prev, gt


def test_robot_strokes_lie_on_their_error_region_and_repeat_for_a_seed():
    prev, gt = _boxes()
    simulation = ScribbleSimulation(robot_prob=1.0)
    pos, neg, robot = simulation.scribbles(prev, gt, False, np.random.default_rng(5))
    assert robot and pos.dtype == np.uint8 and set(np.unique(pos)) == {0, 1} and set(np.unique(neg)) == {0, 1}
    # the 1-px strokes lie inside the convex error strips; the reference then dilates them 3x3
    assert not (pos.astype(bool) & ~_dilated(gt & ~prev, 3)).any() and pos.sum() > 50
    assert not (neg.astype(bool) & ~_dilated(prev & ~gt, 3)).any() and neg.sum() > 50
    again = simulation.scribbles(prev, gt, False, np.random.default_rng(5))
    assert np.array_equal(again[0], pos) and np.array_equal(again[1], neg)


def test_random_strokes_lie_near_their_error_region():
    prev, gt = _boxes()
    simulation = ScribbleSimulation(robot_prob=0.0, gt_only_prob=0.0)
    rng = np.random.default_rng(1)
    for _ in range(10):
        pos, neg, robot = simulation.scribbles(prev, gt, False, rng)
        assert not robot and (pos.any() or neg.any())
        assert not (pos.astype(bool) & ~_dilated(gt & ~prev, 7)).any()
        assert not (neg.astype(bool) & ~_dilated(prev & ~gt, 7)).any()


def test_skeleton_paths_follow_a_bar_end_to_end_with_a_seeded_tie_break():
    mask = np.zeros((60, 200), bool)
    mask[20:40, 10:190] = True
    robot = SkeletonRobot()
    paths = robot.paths(mask, seed=3)
    assert len(paths) == 1
    ys, xs = paths[0][:, 0], paths[0][:, 1]
    assert xs.max() - xs.min() > 120 and np.all((ys >= 20) & (ys < 40))
    assert all(np.array_equal(robot.skeleton(mask[::2, ::2], 7), robot.skeleton(mask[::2, ::2], 7)) for _ in range(3))
    assert robot.paths(np.zeros((10, 10), bool), seed=0) == []


def test_opening_disks_are_centred_and_equal_scikit_image_disks_for_integer_radii():
    from skimage.morphology import disk

    for radius in (1, 2, 5, 16):
        assert np.array_equal(centred_disk(radius), disk(radius))
    for radius in (2.7, 3.5, 9.9):
        footprint = centred_disk(radius)
        assert footprint.shape[0] % 2 == 1 and np.array_equal(footprint, footprint[::-1, ::-1])


def test_longest_path_cuts_cycles_and_prunes_short_pieces():
    ring = np.zeros((12, 12), bool)
    ring[2, 2:10] = ring[9, 2:10] = ring[2:10, 2] = ring[2:10, 9] = True  # a square cycle of 28 pixels
    ring[0, 11] = True  # an isolated pixel
    paths = longest_paths(ring)
    assert sorted(len(p) for p in paths) == [1, 28]
    steps = np.abs(np.diff(paths[1] if len(paths[1]) == 28 else paths[0], axis=0)).max(axis=1)
    assert np.all(steps == 1)  # consecutive 8-neighbours, every pixel once
    assert [len(p) for p in longest_paths(ring, min_nodes=4)] == [28]


def test_bezier_curves_are_bernstein_exact():
    control = np.array([[0.0, 0.0], [10.0, 20.0], [0.0, 40.0]])
    curve = quadratic_bezier(control, 5)
    assert np.allclose(curve[[0, 2, 4]], [[0, 0], [5, 20], [0, 40]])  # B(1/2) = (P0 + 2 P1 + P2) / 4
    assert np.allclose(bezier_through(control, 5), curve)  # the general form agrees for N = 3
    line = np.stack([np.zeros(500), np.arange(500.0)], axis=1)
    assert np.allclose(bezier_through(line, 1000)[[0, -1]], [[0, 0], [0, 499]])  # long paths: no overflow
    assert bezier_through(np.zeros((1001, 2)), 1000).shape == (1001, 2)  # more points than samples: as is


def _two_object_sample() -> InstanceSample:
    labels = np.zeros((80, 120), np.int32)
    labels[10:60, 10:55] = 1
    labels[15:70, 65:115] = 2
    labels[0:5, :] = 255  # ignore band
    return InstanceSample.from_label_map(np.zeros((80, 120, 3), np.uint8), labels, ignore_values=[255], name="two")


def test_sampler_fields_are_the_adapters_and_repeat_for_a_seed():
    sample, sampler = _two_object_sample(), S2MSampler()
    for seed in range(6):
        gt, fields = sampler(sample, np.random.default_rng(seed))
        assert gt.dtype == np.int32 and set(fields) == {"prev_mask", "scribbles"}
        assert fields["prev_mask"].shape == (1, 80, 120) and fields["scribbles"].shape == (2, 80, 120)
        assert fields["prev_mask"].dtype == fields["scribbles"].dtype == np.uint8
        assert fields["scribbles"].max() <= 1 and fields["prev_mask"].max() <= 1
        assert not fields["scribbles"][:, gt == -1].any()  # never on ignore pixels
        gt2, fields2 = sampler(sample, np.random.default_rng(seed))
        assert np.array_equal(gt, gt2) and all(np.array_equal(fields[k], fields2[k]) for k in fields)


def test_sampler_second_object_becomes_negative_scribbles_or_a_leak():
    sample = _two_object_sample()
    always_zero_prev = ScribbleSimulation(from_zero_prob=0.0, robot_prob=0.0)
    negatives = S2MSampler(always_zero_prev, other_object_prob=1.0, extra_negative_prob=1.0, other_min_area=100)
    leaks = S2MSampler(always_zero_prev, other_object_prob=1.0, extra_negative_prob=0.0, other_min_area=100)
    seen_negative = seen_leak = 0
    for seed in range(12):
        gt, fields = negatives(sample, np.random.default_rng(seed))
        other = (sample.get_object_mask(1 if gt[30, 30] == 1 else 0) == 1) & (gt != 1)
        seen_negative += int(fields["scribbles"][1][other].sum() > 20)
        gt, fields = leaks(sample, np.random.default_rng(seed))
        other = (sample.get_object_mask(1 if gt[30, 30] == 1 else 0) == 1) & (gt != 1)
        seen_leak += int(fields["prev_mask"][0][other].mean() > 0.3)
    assert seen_negative >= 3 and seen_leak >= 3  # the target itself is drawn half the time (cancelled)
    with pytest.raises(ValueError, match="other_object_prob"):
        S2MSampler(other_object_prob=1.5)


def test_sampler_feeds_the_dataset():
    from iseg.data.interactive_dataset import InteractiveDataset
    from iseg.data.synthetic import SyntheticShapesSource

    dataset = InteractiveDataset(SyntheticShapesSource(num_samples=3, image_size=(64, 96)), S2MSampler(), seed=0)
    item = dataset[1]
    assert set(item) == {"images", "prev_mask", "scribbles", "instances"}
    assert item["scribbles"].shape == (2, 64, 96) and item["prev_mask"].shape == (1, 64, 96)
    again = InteractiveDataset(SyntheticShapesSource(num_samples=3, image_size=(64, 96)), S2MSampler(), seed=0)[1]
    assert all(np.array_equal(item[k].numpy(), again[k].numpy()) for k in item)
