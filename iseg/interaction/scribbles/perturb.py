"""Previous-mask perturbation: a wrong mask of a wanted IoU, as S2M trains from (reference §1.2).

A copy of the ground truth is dilated and eroded on random axis-aligned sub-rectangles, four at a
time, until its IoU with the ground truth drops below a target. Every random draw comes from the
``numpy.random.Generator`` passed in; the draw order follows the reference's, so distributions (not
pixels) match it.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_ROUNDS = 250
RECTS_PER_ROUND = 4


def random_structure(size: int, rng: np.random.Generator) -> np.ndarray:
    """One of four structuring elements of ``size`` (uniformly): a square, a disk, a flat or a tall ellipse.

    ``cv2.getStructuringElement`` takes (width, height).
    """
    shape, size_wh = [
        (cv2.MORPH_RECT, (size, size)),
        (cv2.MORPH_ELLIPSE, (size, size)),
        (cv2.MORPH_ELLIPSE, (size, size // 2)),
        (cv2.MORPH_ELLIPSE, (size // 2, size)),
    ][int(rng.integers(4))]
    return cv2.getStructuringElement(shape, size_wh)


def random_erode(region: np.ndarray, rng: np.random.Generator, low: int = 3, high: int = 10) -> np.ndarray:
    """``region`` (uint8) eroded once by a random structure of size in [low, high)."""
    return cv2.erode(region, random_structure(int(rng.integers(low, high)), rng))


def random_dilate(region: np.ndarray, rng: np.random.Generator, low: int = 3, high: int = 10) -> np.ndarray:
    """``region`` (uint8) dilated once by a random structure of size in [low, high)."""
    return cv2.dilate(region, random_structure(int(rng.integers(low, high)), rng))


def random_rectangle(height: int, width: int, rng: np.random.Generator) -> tuple[slice, slice]:
    """A random non-empty sub-rectangle (rows, cols): left/top uniform, right/bottom uniform after them."""
    left, top = int(rng.integers(width)), int(rng.integers(height))
    right, bottom = int(rng.integers(left + 1, width + 1)), int(rng.integers(top + 1, height + 1))
    return slice(top, bottom), slice(left, right)


def mask_iou(mask: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two binary masks with the reference's 1e-6 smoothing (empty vs empty is 1)."""
    mask, gt = mask.astype(bool), gt.astype(bool)
    return (np.count_nonzero(mask & gt) + 1e-6) / (np.count_nonzero(mask | gt) + 1e-6)


def perturb_mask(gt: np.ndarray, iou_target: float, rng: np.random.Generator) -> np.ndarray:
    """A bool mask made from ``gt`` (H×W, non-zero = object) whose IoU with it is below ``iou_target``.

    Up to 250 rounds of 4 random sub-rectangles; in each rectangle, with probability 0.1 its centre
    pixel is first set to object or background (to seed holes and islands), then it is dilated or
    eroded (probability 0.5 each) by a random structure of size 3..9. Stops after the first round
    that brings the IoU below the target, so the result's IoU is usually just under it.
    Images with a side of 2 pixels or less are returned unchanged.
    """
    seg = (np.asarray(gt) > 0).astype(np.uint8)
    height, width = seg.shape
    target = seg.astype(bool)
    if height <= 2 or width <= 2:
        return target.copy()
    for _ in range(MAX_ROUNDS):
        for _ in range(RECTS_PER_ROUND):
            rows, cols = random_rectangle(height, width, rng)
            if rng.random() < 0.1:
                seg[(rows.start + rows.stop) // 2, (cols.start + cols.stop) // 2] = int(rng.integers(2))
            window = seg[rows, cols]
            seg[rows, cols] = random_dilate(window, rng) if rng.random() < 0.5 else random_erode(window, rng)
        if mask_iou(seg, target) < iou_target:
            break
    return seg.astype(bool)
