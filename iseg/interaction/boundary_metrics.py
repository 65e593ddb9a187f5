"""Boundary IoU and ASSD after each click: FCFI's extra evaluation metrics (mBIoU@k, ASSD@k).

Both compare the thresholded prediction with the ground truth (1 object, 0 background, -1 ignore)
at full image resolution, with the definitions of FCFI's evaluation (``fcfi:isegm/inference/utils.py``):

- **Boundary IoU** (Cheng et al. 2021) with dilation ratio 0.02: the band of a mask is its pixels
  within Chebyshev distance ``d = max(1, round(0.02 * image diagonal))`` of a pixel outside it,
  the outside of the image counting as outside (the reference erodes the zero-padded mask d times
  with a 3x3 square). BIoU = |pred band & gt band| / |(pred band | gt band) minus excluded|.
  Ignore pixels, as the reference treats them (it erodes the GT coded 0 / 1 / 255): they do not
  end the object (an object pixel next to ignore only is not a band pixel), and only the ignore
  pixels within ``d`` of background (or of the image border) are excluded from the union;
  predicted band pixels deeper inside an ignore region still count in it.
- **ASSD** (average symmetric surface distance, pixels): the contour of a mask is drawn from its
  outer contours (``cv2.findContours`` RETR_EXTERNAL, one pixel thick; holes have none);
  ASSD = (sum over predicted contour pixels of the distance to the GT contour + sum over GT
  contour pixels of the distance to the predicted contour) / (number of contour pixels of both).
  The GT is ``gt == 1``: ignore pixels are background here.

Degenerate cases kept as the reference computes them: a union without pixels gives a NaN BIoU
(0/0, which makes that click's dataset mean NaN, like the IoU); an empty prediction has no
contour, and the reference's distance map of it (scipy's EDT of an image without a zero pixel)
measures the distance to the virtual pixel (row -1, column 0), so its ASSD is the mean over GT
contour pixels of that distance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt

from iseg.interaction.metrics import DEFAULT_MIOU_CLICKS, mean_iou_curve

DEFAULT_DILATION_RATIO = 0.02


def band_width(shape: tuple[int, int], dilation_ratio: float = DEFAULT_DILATION_RATIO) -> int:
    """Band width in pixels: ``max(1, round(dilation_ratio * diagonal))`` (round half to even)."""
    if dilation_ratio <= 0:
        raise ValueError(f"dilation_ratio must be > 0, got {dilation_ratio}")
    return max(1, int(round(dilation_ratio * math.hypot(shape[0], shape[1]))))


def inner_band(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels of ``mask`` within Chebyshev distance ``width`` of a pixel outside it or of the image's outside."""
    mask = np.asarray(mask, dtype=bool)
    kernel = np.ones((2 * width + 1, 2 * width + 1), dtype=np.uint8)
    eroded = cv2.erode(mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask & (eroded == 0)


def outer_contour(mask: np.ndarray) -> np.ndarray:
    """One-pixel-thick outer contours of the mask's components (no hole contours), as a bool map."""
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    drawn = np.zeros(mask.shape, dtype=np.uint8)
    cv2.drawContours(drawn, contours, -1, 1, 1)
    return drawn.astype(bool)


def distance_to(pixels: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest true pixel of ``pixels`` (float64).

    Without any true pixel: the distance to the virtual pixel (-1, 0), the reference's value.
    """
    if pixels.any():
        return distance_transform_edt(~pixels)
    rows, cols = np.indices(pixels.shape)
    return np.hypot(rows + 1.0, cols)


class BoundaryMetrics:
    """Boundary IoU and ASSD of predictions against one ground truth (its side computed once).

    Args:
        gt: (H, W) map with 1 = object, 0 = background, ``ignore_label`` = ignore.
        dilation_ratio: band width as a fraction of the image diagonal (FCFI: 0.02).
    """

    def __init__(self, gt: np.ndarray, dilation_ratio: float = DEFAULT_DILATION_RATIO, ignore_label: int = -1):
        gt = np.asarray(gt)
        if gt.ndim != 2:
            raise ValueError(f"gt must be a 2-D map, got shape {gt.shape}")
        self.shape = gt.shape
        self.width = band_width(gt.shape, dilation_ratio)
        obj, ignore = gt == 1, gt == ignore_label
        near_background = inner_band(obj | ignore, self.width)
        self.gt_band = obj & near_background
        self.excluded = ignore & near_background
        self.gt_contour = outer_contour(obj)
        self._gt_contour_distance = distance_to(self.gt_contour)

    def _check(self, pred_mask: np.ndarray) -> np.ndarray:
        pred_mask = np.asarray(pred_mask, dtype=bool)
        if pred_mask.shape != self.shape:
            raise ValueError(f"pred_mask shape {pred_mask.shape} differs from gt shape {self.shape}")
        return pred_mask

    def boundary_iou(self, pred_mask: np.ndarray) -> float:
        """Boundary IoU in float64; NaN when neither band has a counted pixel."""
        pred_band = inner_band(self._check(pred_mask), self.width)
        intersection = np.count_nonzero(pred_band & self.gt_band)
        union = np.count_nonzero((pred_band | self.gt_band) & ~self.excluded)
        return float(intersection / union) if union else float("nan")

    def assd(self, pred_mask: np.ndarray) -> float:
        """Average symmetric surface distance in pixels (float64); NaN when both contours are empty."""
        pred_contour = outer_contour(self._check(pred_mask))
        total = self._gt_contour_distance[pred_contour].sum() + distance_to(pred_contour)[self.gt_contour].sum()
        count = np.count_nonzero(pred_contour) + np.count_nonzero(self.gt_contour)
        return float(total / count) if count else float("nan")

    def __call__(self, pred_mask: np.ndarray) -> tuple[float, float]:
        """(boundary IoU, ASSD) of one prediction."""
        return self.boundary_iou(pred_mask), self.assd(pred_mask)


def boundary_iou(
    pred_mask: np.ndarray, gt: np.ndarray, dilation_ratio: float = DEFAULT_DILATION_RATIO, ignore_label: int = -1
) -> float:
    """Boundary IoU of one prediction (see the module docstring)."""
    return BoundaryMetrics(gt, dilation_ratio, ignore_label).boundary_iou(pred_mask)


def assd(pred_mask: np.ndarray, gt: np.ndarray, ignore_label: int = -1) -> float:
    """ASSD of one prediction in pixels (see the module docstring)."""
    return BoundaryMetrics(gt, ignore_label=ignore_label).assd(pred_mask)


def summarize_boundary(
    biou_arrays: Sequence[np.ndarray],
    assd_arrays: Sequence[np.ndarray],
    clicks: Sequence[int] = DEFAULT_MIOU_CLICKS,
) -> dict[str, float]:
    """``mBIoU@k`` and ``ASSD@k``: per-click means over samples (arrays cut to the shortest), as for mIoU@k."""
    summary: dict[str, float] = {}
    for name, arrays in (("mBIoU", biou_arrays), ("ASSD", assd_arrays)):
        curve = mean_iou_curve(arrays)
        for k in clicks:
            if k <= len(curve):
                summary[f"{name}@{k}"] = float(curve[k - 1])
    return summary
