"""S2M's training-time interaction: a previous mask and the scribbles that correct it (reference §1.2).

:func:`simulate_previous_mask` starts "from zero" (an empty mask) with probability 0.33, else
perturbs the ground truth to an IoU drawn from [0.4, 0.95). :func:`simulate_scribbles` then draws
positive scribbles on the false negatives and negative ones on the false positives: with
probability 0.75 (never from zero) the skeleton robot's strokes, dilated 3x3; otherwise, after an
opening of the error regions, one or two random stroke types (boundary / thinned / curve) per large
enough error region, plus, with probability 0.3 or when nothing was drawn, "GT-only" curves on the
object (positive) and on the background (negative).

One ``numpy.random.Generator`` drives everything; the call order follows the reference's, but the
draws themselves differ from its legacy global RNG, so the statistics (not the pixels) match
``s2m_scribble_stats.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from iseg.interaction.scribbles.perturb import perturb_mask
from iseg.interaction.scribbles.skeleton import SkeletonRobot
from iseg.interaction.scribbles.strokes import boundary_scribble, curve_scribble, disk_kernel, thinned_scribble

_SQUARE = np.ones((3, 3), np.uint8)
SEED_HIGH = 2**31 - 1


@dataclass(frozen=True)
class ScribbleSimulation:
    """The probabilities of S2M's simulation (defaults: the reference's)."""

    from_zero_prob: float = 0.33
    iou_min: float = 0.4
    iou_max: float = 0.95
    robot_prob: float = 0.75
    second_type_prob: float = 0.3
    gt_only_prob: float = 0.3
    robot: SkeletonRobot = field(default_factory=SkeletonRobot)

    def previous_mask(self, gt: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool, float | None]:
        """(bool previous mask, from_zero, iou_target or None) for the bool ``gt``."""
        if rng.random() < self.from_zero_prob:
            return np.zeros(gt.shape, bool), True, None
        iou_target = self.iou_min + (self.iou_max - self.iou_min) * rng.random()
        return perturb_mask(gt, iou_target, rng), False, iou_target

    def scribbles(
        self, prev: np.ndarray, gt: np.ndarray, from_zero: bool, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """(positive, negative) uint8 0/1 maps for bool ``prev`` and ``gt``, and whether the robot drew them."""
        prev, gt = np.asarray(prev, bool), np.asarray(gt, bool)
        use_robot = not from_zero and rng.random() < self.robot_prob
        false_pos = (prev & ~gt).astype(np.uint8)
        false_neg = (~prev & gt).astype(np.uint8)
        if use_robot:
            negative = self.robot.raster(false_pos, int(rng.integers(SEED_HIGH)))
            positive = self.robot.raster(false_neg, int(rng.integers(SEED_HIGH)))
            return cv2.dilate(positive, _SQUARE), cv2.dilate(negative, _SQUARE), True
        opening = disk_kernel(int(rng.integers(5, 20)))
        maps = [self._region_scribbles(cv2.morphologyEx(error, cv2.MORPH_OPEN, opening), rng)
                for error in (false_neg, false_pos)]
        if rng.random() < self.gt_only_prob or not (maps[0].any() or maps[1].any()):
            for i, region in enumerate((gt.astype(np.uint8), (~gt).astype(np.uint8))):
                if np.count_nonzero(region) >= 100:
                    maps[i] |= curve_scribble(region, rng, max_curves=5, keep_longest=False)
        return maps[0], maps[1], False

    def _region_scribbles(self, error: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One or two random stroke types on every 8-connected error region of at least 10..99 pixels."""
        out = np.zeros(error.shape, np.uint8)
        num_labels, labels = cv2.connectedComponents(error)
        for label in range(1, num_labels):
            region = (labels == label).astype(np.uint8)
            if np.count_nonzero(region) < rng.integers(10, 100):
                continue
            out |= self._random_type(region, rng)
            if rng.random() < self.second_type_prob:
                out |= self._random_type(region, rng)
        return out

    @staticmethod
    def _random_type(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        pick = rng.random()
        if pick < 0.33:
            return boundary_scribble(region, rng)
        if pick < 0.66:
            return thinned_scribble(region, rng)
        return curve_scribble(region, rng)
