"""Simulated interactions for training: the ``InteractionSampler`` protocol and RITM's MultiPointSampler.

An ``InteractionSampler`` turns one augmented training sample into the target and the
interactions a user already gave on it; ``InteractiveDataset`` calls it once per item with the
dataset's generator. ``MultiPointSampler`` (reference §2.2; FCFI uses it unchanged) is the click
one: for a sample it picks the target (one root object, or with ``merge_objects_prob`` the union of
2..``max_num_merged_objects`` roots) and simulates a user who already clicked a few times:
a geometric number of positives inside the (usually eroded) object and of negatives outside it,
each negative taken from the background, from other objects or from a band around the target
(probabilities 0.1 / 0.4 / 0.5). Draw counts and regions follow the reference; only the random
calls differ (one numpy Generator passed in), so tests compare distributions, not samples.

One deliberate difference: clicks never land on ignore pixels (the reference treats -1 as part of
the object for positives and as background for negatives). The released training sets (SBD,
COCO+LVIS) have no ignore regions, so their behaviour is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from iseg.data.sample import InstanceSample
from iseg.interaction.errors import padded_distance

FIRST_CLICK_ORDER = 0
OTHER_CLICK_ORDER = 100
NEGATIVE_STRATEGIES = ("bg", "other", "border")
_KERNEL = np.ones((3, 3), np.uint8)


@lru_cache(maxsize=None)
def generate_probs(num: int, gamma: float) -> np.ndarray:
    """P(k) ∝ gamma**k for k = 0..num-1: few clicks are more likely than many."""
    probs = gamma ** np.arange(num, dtype=np.float64)
    probs = probs / probs.sum()
    probs.flags.writeable = False
    return probs


def center_click_candidates(region: np.ndarray, k: float = 1.7) -> np.ndarray:
    """H×W bool: pixels whose exact L2 distance to the region's outside (image border included) exceeds max/k."""
    dt = padded_distance(np.ascontiguousarray(region, dtype=np.uint8), exact=True)
    return dt > dt.max() / k


def _as_uint8(mask: np.ndarray) -> np.ndarray:
    """A bool mask as 0/1 uint8 for OpenCV, without a copy when it is contiguous."""
    return mask.view(np.uint8) if mask.flags.c_contiguous else mask.astype(np.uint8)


def _as_bool(mask: np.ndarray) -> np.ndarray:
    """A 0/1 uint8 result of OpenCV morphology as bool, without a copy."""
    return mask.view(bool)


@runtime_checkable
class InteractionSampler(Protocol):
    """Chooses the training target of a sample and simulates the interactions already given on it.

    Called as ``sampler(sample, rng)`` on the augmented, pruned sample (objects smaller than the
    dataset's ``min_object_area`` are gone; a sample may have no object left, then the target is
    empty). Every random draw must come from ``rng`` so that items repeat for a seed.
    """

    def __call__(
        self, sample: InstanceSample, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | Mapping[str, np.ndarray]]:
        """(gt int32 H×W in {-1 ignore, 0, 1 target}, the simulated interactions).

        The interactions are one array, the item's ``points`` (for clicks the (2N, 3) rows
        (y, x, order), positives first, padded with -1, see ``MultiPointSampler``), or a mapping of
        named arrays that become item fields of those names (scribble maps, a previous mask,
        guidance maps: whatever the method's input adapter reads in ``training_prompts``). A
        mapping may hold ``"image"`` (H×W×3 uint8) to replace the sample's image, for samplers that
        crop around the target; gt then has that image's size.
        """
        ...


class _Pixels:
    """Uniform pixel draws from a boolean region; the flat index list is built once, on demand."""

    def __init__(self, region: np.ndarray) -> None:
        self.region = region
        self.width = region.shape[1]
        self._flat: np.ndarray | None = None

    @property
    def flat(self) -> np.ndarray:
        if self._flat is None:
            self._flat = np.flatnonzero(self.region)
        return self._flat

    def draw(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """(count, 2) int64 (y, x) drawn with replacement; (0, 2) when the region is empty."""
        if len(self.flat) == 0 or count == 0:
            return np.zeros((0, 2), np.int64)
        idx = self.flat[rng.integers(0, len(self.flat), size=count)]
        return np.stack(np.divmod(idx, self.width), axis=1)


class MultiPointSampler:
    """Target mask and initial clicks for one training sample: the click ``InteractionSampler``.

    Defaults are the reference's; the released RITM/FCFI configs use ``max_num_points=24,
    prob_gamma=0.8, merge_objects_prob=0.15, max_num_merged_objects=2`` (+ ``first_click_center``
    in FCFI). ``max_num_merged_objects=-1`` means up to ``max_num_points`` objects.
    """

    def __init__(
        self,
        max_num_points: int = 24,
        prob_gamma: float = 0.7,
        expand_ratio: float = 0.1,
        positive_erode_prob: float = 0.9,
        positive_erode_iters: int = 3,
        negative_bg_prob: float = 0.1,
        negative_other_prob: float = 0.4,
        negative_border_prob: float = 0.5,
        merge_objects_prob: float = 0.0,
        max_num_merged_objects: int = 2,
        first_click_center: bool = False,
        sfc_inner_k: float = 1.7,
    ) -> None:
        if max_num_points < 1:
            raise ValueError(f"max_num_points must be >= 1, got {max_num_points}")
        strategy_probs = (negative_bg_prob, negative_other_prob, negative_border_prob)
        if not math.isclose(sum(strategy_probs), 1.0) or min(strategy_probs) < 0:
            raise ValueError(
                "negative_bg_prob + negative_other_prob + negative_border_prob must be 1 with no negative term, "
                f"got {strategy_probs}"
            )
        if sfc_inner_k <= 0:
            raise ValueError(f"sfc_inner_k must be > 0, got {sfc_inner_k}")
        self.max_num_points = max_num_points
        self.prob_gamma = prob_gamma
        self.expand_ratio = expand_ratio
        self.positive_erode_prob = positive_erode_prob
        self.positive_erode_iters = positive_erode_iters
        self.negative_strategy_probs = np.asarray(strategy_probs, np.float64)
        self.merge_objects_prob = merge_objects_prob
        self.max_num_merged_objects = max_num_points if max_num_merged_objects == -1 else max_num_merged_objects
        self.first_click_center = first_click_center
        self.sfc_inner_k = sfc_inner_k
        self.positive_count_probs = generate_probs(max_num_points, prob_gamma)
        self.negative_count_probs = generate_probs(max_num_points + 1, prob_gamma)

    def __call__(self, sample: InstanceSample, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Return (gt int32 H×W in {-1, 0, 1}, points float32 (2N, 3) rows (y, x, order), pad -1)."""
        allowed = ~sample.ignore_mask
        if len(sample) == 0:
            gt = np.zeros(sample.shape, np.int32)
            background = sample.background_mask
            negative_regions = [background] * len(NEGATIVE_STRATEGIES)
            positives = np.zeros((0, 3), np.int64)
        else:
            selected = self._select_objects(sample.root_objects, rng)
            object_masks = [sample.get_object_mask(obj_id) for obj_id in selected]
            gt = object_masks[0] if len(object_masks) == 1 else np.maximum.reduce(object_masks)
            positives = self._positive_points([self._erode(m == 1, rng) for m in object_masks], rng)
            target = gt > 0
            background = ~target & allowed
            other = background if len(sample) <= len(selected) else ~sample.background_mask & background
            negative_regions = [background, other, self._border(target) & allowed]
        negatives = self._mixture_points(negative_regions, self.negative_strategy_probs, self._negative_count(rng), rng)
        points = np.full((2 * self.max_num_points, 3), -1, np.float32)
        points[: len(positives)] = positives
        points[self.max_num_points : self.max_num_points + len(negatives)] = negatives
        return gt, points

    # ------------------------------------------------------------------ targets
    def _select_objects(self, roots: Sequence[int], rng: np.random.Generator) -> list[int]:
        if len(roots) > 1 and rng.random() < self.merge_objects_prob:
            most = min(len(roots), self.max_num_merged_objects)
            count = int(rng.integers(2, most + 1))
            return [int(i) for i in rng.choice(roots, size=count, replace=False)]
        return [int(roots[rng.integers(len(roots))])]

    def _erode(self, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """With prob positive_erode_prob, erode 3×3 ×iters, unless that leaves 10 pixels or fewer."""
        if rng.random() > self.positive_erode_prob:
            return region
        eroded = _as_bool(cv2.erode(_as_uint8(region), _KERNEL, iterations=self.positive_erode_iters))
        return eroded if eroded.sum() > 10 else region

    def _border(self, target: np.ndarray) -> np.ndarray:
        """Band of ceil(expand_ratio·sqrt(area)) 3×3 dilations around the target."""
        radius = int(np.ceil(self.expand_ratio * np.sqrt(target.sum())))
        if radius == 0:
            return np.zeros_like(target)
        return _as_bool(cv2.dilate(_as_uint8(target), _KERNEL, iterations=radius)) & ~target

    # ------------------------------------------------------------------ clicks
    def _positive_count(self, rng: np.random.Generator) -> int:
        return 1 + int(rng.choice(self.max_num_points, p=self.positive_count_probs))

    def _negative_count(self, rng: np.random.Generator) -> int:
        return int(rng.choice(self.max_num_points + 1, p=self.negative_count_probs))

    def _object_points(self, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Clicks on one object: optionally a centre click (order 0) first, then uniform ones."""
        count = self._positive_count(rng)
        rows = []
        if self.first_click_center:
            centre = _Pixels(center_click_candidates(region, self.sfc_inner_k)).draw(1, rng)
            rows.append(np.concatenate([centre, np.full((len(centre), 1), FIRST_CLICK_ORDER)], axis=1))
            count -= 1
        others = _Pixels(region).draw(count, rng)
        rows.append(np.concatenate([others, np.full((len(others), 1), OTHER_CLICK_ORDER)], axis=1))
        return np.concatenate(rows, axis=0)

    def _positive_points(self, regions: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        """One object: its clicks. Several: the first click of each, then a union draw, up to N."""
        regions = regions[: self.max_num_points]
        per_object = [p for p in (self._object_points(r, rng) for r in regions) if len(p)]
        if len(per_object) <= 1:
            return per_object[0] if per_object else np.zeros((0, 3), np.int64)
        firsts = np.stack([p[0] for p in per_object])
        uniform = np.full(len(regions), 1.0 / len(regions))
        union = self._mixture_points(regions, uniform, self._negative_count(rng), rng)
        room = self.max_num_points - len(firsts)
        if len(union) > room:
            union = union[rng.choice(len(union), size=room, replace=False)]
        return np.concatenate([firsts, union], axis=0)

    def _mixture_points(
        self, regions: Sequence[np.ndarray], probs: np.ndarray, count: int, rng: np.random.Generator
    ) -> np.ndarray:
        """``count`` clicks (order 100), each from a region drawn with ``probs``; empty regions give none."""
        choice = rng.choice(len(regions), size=count, p=probs)
        coords = np.zeros((count, 2), np.int64)
        keep = np.zeros(count, bool)
        pools: dict[int, _Pixels] = {}
        for index in np.unique(choice):
            rows = np.flatnonzero(choice == index)
            pool = pools.setdefault(id(regions[index]), _Pixels(regions[index]))
            drawn = pool.draw(len(rows), rng)
            if len(drawn):
                coords[rows] = drawn
                keep[rows] = True
        coords = coords[keep]
        return np.concatenate([coords, np.full((len(coords), 1), OTHER_CLICK_ORDER)], axis=1)
