"""Forte et al.'s simulated user (DeepInteractiveSegmentation ``robot_click``).

It differs from the standard clicker (:class:`~iseg.interaction.robots.ClickRobot`) on purpose,
and each difference is the reference's:

- it compares the *largest 8-connected component* of the false negatives with that of the false
  positives (by pixel count; the larger wins, a tie - including no error - gives background), not
  the deepest error pixel;
- the click is the first (row-major) pixel farthest from that component's boundary, the image
  border counting as boundary; pixels clicked before are *not* excluded;
- with no error at all the reference's (-1, -1) indexes the trimap from the end: a background click
  on the bottom-right pixel.

Ignore pixels (GrabCut's band, -1 here) are in neither error set. Distances use SciPy's exact
float64 transform, which ties like the reference's OpenCV one on the golden runs and, unlike it,
does not depend on the thread count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from iseg.interaction.next_click import validate_gt
from iseg.interaction.prompts import Click


_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask; equal sizes: the one whose first pixel
    comes first in row-major order (the lowest label of a raster-order labelling, as the reference's
    ``np.unique`` + ``argmax`` over OpenCV labels). SciPy's labelling is sequential, so the choice
    does not depend on thread counts."""
    labels, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    if count == 0:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    return labels == 1 + int(np.argmax(sizes))


def largest_error_region(pred_mask: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, bool]:
    """(region, is_positive): the larger of the largest false-positive and false-negative components."""
    false_pos = largest_component((gt == 0) & pred_mask)
    false_neg = largest_component((gt == 1) & ~pred_mask)
    is_positive = int(false_neg.sum()) > int(false_pos.sum())
    return (false_neg if is_positive else false_pos), is_positive


def deepest_pixel(region: np.ndarray) -> tuple[int, int] | None:
    """First row-major pixel of maximal distance to the region's complement or the image border."""
    if not region.any():
        return None
    padded = np.pad(region, 1)
    distance = ndimage.distance_transform_edt(padded)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return int(y), int(x)


def forte_next_click(gt: np.ndarray, pred_mask: np.ndarray) -> Click:
    """The reference's next click for ``gt`` (1 object, 0 background, -1 ignore) and a binary prediction."""
    gt = validate_gt(gt)
    pred_mask = np.asarray(pred_mask)
    if pred_mask.shape != gt.shape:
        raise ValueError(f"pred_mask shape {pred_mask.shape} differs from gt shape {gt.shape}")
    region, is_positive = largest_error_region(pred_mask.astype(bool), gt)
    position = deepest_pixel(region)
    if position is None:  # no error: the reference writes trimap[-1, -1, 0]
        return Click(gt.shape[0] - 1, gt.shape[1] - 1, False)
    return Click(position[0], position[1], is_positive)


class ForteClickRobot:
    """The :class:`~iseg.interaction.robots.Robot` of Forte et al.'s evaluation (``robot_click``)."""

    def __init__(self) -> None:
        self._gt: np.ndarray | None = None
        self._clicks: list[Click] = []

    def start(self, gt: np.ndarray) -> None:
        self._gt = validate_gt(gt)
        self._clicks = []

    def next(self, pred_mask: np.ndarray) -> Click:
        if self._gt is None:
            raise RuntimeError("call start(gt) before asking the robot for a click")
        click = forte_next_click(self._gt, pred_mask)
        self._clicks.append(click)
        return click

    @property
    def history(self) -> list[Click]:
        return list(self._clicks)


def forte_training_clicks(
    pred_probs: torch.Tensor, gt: torch.Tensor, rng: object = None, pred_thresh: float = 0.49
) -> Sequence[Click | None]:
    """The robot's rule as the training simulation's click rule (``InteractiveModule(click_rule=...)``).

    ``pred_probs`` and ``gt`` are (B, 1, H, W); labels 1 / 0 / -1 (ignore). Deterministic (``rng``
    is unused). A sample without any error gets no click (None) rather than the evaluation's
    bottom-right background click. Our reading of the paper's interactive training, whose code
    was not released.
    """
    if pred_probs.dim() != 4 or pred_probs.shape[1] != 1 or gt.shape != pred_probs.shape:
        raise ValueError(f"pred_probs and gt must both be (B, 1, H, W), got {tuple(pred_probs.shape)} and {tuple(gt.shape)}")
    masks = (pred_probs.detach().float().cpu().numpy()[:, 0]) > pred_thresh
    labels = gt.detach().cpu().numpy()[:, 0]
    clicks: list[Click | None] = []
    for mask, label in zip(masks, labels):
        region, is_positive = largest_error_region(mask, np.rint(label).astype(np.int8))
        position = deepest_pixel(region)
        clicks.append(None if position is None else Click(float(position[0]), float(position[1]), is_positive))
    return clicks
