"""Scribbles drawn inside one error region: boundary, thinned and Bézier-curve strokes (reference §1.2).

Each function takes a uint8 0/1 region and the generator, and returns a uint8 0/1 scribble map of the
same size. They are the "not robot" half of S2M's training simulation and the GT-only extras.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.morphology import skeletonize

from iseg.interaction.scribbles.perturb import random_erode, random_rectangle

CURVE_SAMPLES = 1024
CURVE_CANDIDATES = 10
_SQUARE = np.ones((3, 3), np.uint8)


def disk_kernel(size: int) -> np.ndarray:
    """OpenCV's elliptic structuring element of ``size`` x ``size``."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def break_up(scribble: np.ndarray, rng: np.random.Generator, pieces: int = 4) -> np.ndarray:
    """``scribble`` with ``pieces`` random sub-rectangles eroded by a random structure of size 5..9 (gaps)."""
    height, width = scribble.shape
    for _ in range(pieces):
        rows, cols = random_rectangle(height, width, rng)
        scribble[rows, cols] = random_erode(scribble[rows, cols], rng, low=5)
    return scribble


def boundary_scribble(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A thin ring inside the region (eroded by a disk of size 3..49, then a 3x3 gradient), broken up."""
    eroded = cv2.erode(region, disk_kernel(int(rng.integers(3, 50))))
    return break_up(cv2.morphologyEx(eroded, cv2.MORPH_GRADIENT, _SQUARE), rng)


def thinned_scribble(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The region's Zhang–Suen thinning (scikit-image's ``skeletonize(method='zhang')``), 3 px wide, broken up."""
    thinned = skeletonize(region.astype(bool), method="zhang").astype(np.uint8)
    return break_up(cv2.dilate(thinned, _SQUARE), rng)


def quadratic_bezier(control: np.ndarray, num_points: int = CURVE_SAMPLES) -> np.ndarray:
    """(num_points, 2) points of the quadratic Bézier with control points ``control`` (3, 2), t in [0, 1].

    Bernstein form (1-t)^2 P0 + 2t(1-t) P1 + t^2 P2: exactly the curve the reference evaluates with
    the ``bezier`` package.
    """
    t = np.linspace(0.0, 1.0, num_points)[:, None]
    return (1 - t) ** 2 * control[0] + 2 * t * (1 - t) * control[1] + t**2 * control[2]


def curve_scribble(
    region: np.ndarray,
    rng: np.random.Generator,
    min_curves: int = 2,
    max_curves: int = 4,
    keep_longest: bool = True,
) -> np.ndarray:
    """Random quadratic Bézier strokes through pixels of the region, 3 px wide, kept near the region.

    Draws k in [min_curves, max_curves) curves; with ``keep_longest`` 10 candidates are drawn and the
    k longest (in pixels) kept. Each curve goes through three distinct random pixels of the region
    (in drawing order as control points) and is masked by the region dilated by a disk of size 3..6
    (some labelling error is allowed). A region of fewer than 3 pixels gets no curve.
    """
    num_curves = int(rng.integers(min_curves, max_curves))
    pixels = np.argwhere(region)
    if len(pixels) < 3:
        return np.zeros_like(region, dtype=np.uint8)
    candidates, lengths = [], []
    for _ in range(CURVE_CANDIDATES if keep_longest else num_curves):
        control = pixels[rng.choice(len(pixels), size=3, replace=False)].astype(np.float64)
        points = quadratic_bezier(control)[:, ::-1].astype(np.int32).reshape(-1, 1, 2)  # (x, y), truncated
        stroke = cv2.polylines(np.zeros(region.shape, np.uint8), [points], isClosed=False, color=1, thickness=3)
        stroke *= cv2.dilate(region, disk_kernel(int(rng.integers(3, 7))))
        candidates.append(stroke)
        lengths.append(int(stroke.sum()))
    order = sorted(range(len(candidates)), key=lambda i: lengths[i], reverse=True)  # stable: ties keep draw order
    out = np.zeros(region.shape, np.uint8)
    for i in order[:num_curves]:
        out |= candidates[i]
    return out
