"""``S2MSampler``: the training target, its previous mask and its scribbles (S2M's InteractionSampler).

For one augmented sample: a root object is the target (uniformly); the previous mask and the
scribbles come from :class:`~iseg.interaction.scribbles.simulate.ScribbleSimulation`. When the mask
is not from zero and the sample holds another object (LVIS images do; the reference's static sets
do not), with probability ``other_object_prob`` a second object of at least ``other_min_area`` pixels
is drawn (the target itself may be drawn, which cancels it, as in the reference); then with
probability ``extra_negative_prob`` its from-zero positive scribbles become negatives ("do not take
the neighbour"), else its perturbed mask is added to the previous mask (a leak onto the neighbour).

Scribbles never lie on ignore pixels (gt == -1). The item fields are ``prev_mask`` uint8 (1, H, W)
0/1 and ``scribbles`` uint8 (2, H, W) 0/1 (positive, negative), what the S2M input adapter reads.
"""

from __future__ import annotations

import numpy as np

from iseg.data.sample import InstanceSample
from iseg.interaction.scribbles.perturb import perturb_mask
from iseg.interaction.scribbles.simulate import ScribbleSimulation


class S2MSampler:
    """S2M's training interaction; defaults are the reference's (LVIS extras included)."""

    def __init__(
        self,
        simulation: ScribbleSimulation | None = None,
        other_object_prob: float = 0.75,
        extra_negative_prob: float = 0.5,
        other_min_area: int = 30 * 30,
        other_iou_target: float = 0.6,
    ) -> None:
        for name, value in (("other_object_prob", other_object_prob), ("extra_negative_prob", extra_negative_prob)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"S2MSampler: {name} must be a probability in [0, 1], got {value}")
        self.simulation = simulation if simulation is not None else ScribbleSimulation()
        self.other_object_prob = other_object_prob
        self.extra_negative_prob = extra_negative_prob
        self.other_min_area = other_min_area
        self.other_iou_target = other_iou_target

    def __call__(self, sample: InstanceSample, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(gt int32 H×W in {-1, 0, 1}, {"prev_mask": (1, H, W), "scribbles": (2, H, W)} uint8 0/1)."""
        roots = sample.root_objects
        if roots:
            target_id = int(roots[rng.integers(len(roots))])
            gt = sample.get_object_mask(target_id)
        else:
            target_id, gt = None, np.zeros(sample.shape, np.int32)
        target = gt == 1
        prev, from_zero, _ = self.simulation.previous_mask(target, rng)
        extra_negative = None
        other = self._other_object(sample, target_id, rng) if not from_zero and roots else None
        if other is not None:
            if rng.random() < self.extra_negative_prob:
                extra_negative, _, _ = self.simulation.scribbles(np.zeros_like(other), other, True, rng)
            else:
                prev = prev | perturb_mask(other, self.other_iou_target, rng)
        positive, negative, _ = self.simulation.scribbles(prev, target, from_zero, rng)
        if extra_negative is not None:
            negative = negative | extra_negative
        allowed = gt != -1
        scribbles = np.stack([positive.astype(bool) & allowed, negative.astype(bool) & allowed]).astype(np.uint8)
        return gt, {"prev_mask": prev[None].astype(np.uint8), "scribbles": scribbles}

    def _other_object(self, sample: InstanceSample, target_id: int | None, rng: np.random.Generator) -> np.ndarray | None:
        """The second object's bool mask, or None (not drawn, none large enough, or the target drawn)."""
        if rng.random() >= self.other_object_prob:
            return None
        candidates = [i for i in sample.root_objects if sample.objects[i].area >= self.other_min_area]
        if not candidates:
            return None
        other_id = int(candidates[rng.integers(len(candidates))])
        return None if other_id == target_id else sample.get_object_mask(other_id) == 1
