"""Error regions of a prediction and their border-padded distance transforms.

Both next-click rules (the evaluation clicker and the training-time simulation) place a click
deep inside the larger error region. They share this step: false-negative and false-positive
masks, zero-padded by one pixel so that the image border counts as a region boundary, then
``cv2.distanceTransform`` (DIST_L2) and cropped back. The evaluation uses the exact transform
(mask size 0), the training rule the 5x5 chamfer approximation, as the references do. OpenCV's
own implementation is used, never IPP's, so that values do not depend on thread counts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import cv2
import numpy as np


def error_masks(
    gt_fg: np.ndarray,
    pred_fg: np.ndarray,
    valid: np.ndarray | None = None,
    pred_bg: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """False-negative and false-positive masks (H, W) as uint8 0/1, ready for cv2.

    ``pred_bg`` defaults to ``~pred_fg``; the training rule passes it separately because it
    thresholds with ``<`` and ``>`` so that a probability equal to the threshold is neither.
    Pixels outside ``valid`` (ignore regions) are in neither mask.
    """
    gt_fg = np.asarray(gt_fg, dtype=bool)
    pred_fg = np.asarray(pred_fg, dtype=bool)
    if gt_fg.ndim != 2 or gt_fg.shape != pred_fg.shape:
        raise ValueError(f"gt and prediction must be 2-D of one shape, got {gt_fg.shape} and {pred_fg.shape}")
    pred_bg = ~pred_fg if pred_bg is None else np.asarray(pred_bg, dtype=bool)
    fn = gt_fg & pred_bg
    fp = ~gt_fg & pred_fg
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        fn &= valid
        fp &= valid
    return fn.view(np.uint8), fp.view(np.uint8)


def padded_distance(mask: np.ndarray, exact: bool = True) -> np.ndarray:
    """L2 distance of each mask pixel to the nearest non-mask pixel or to the image border.

    ``mask`` is (H, W) uint8; returns float32 (H, W), 0 outside the mask. ``exact`` selects the
    precise transform (mask size 0), otherwise the 5x5 chamfer approximation.
    """
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D uint8 array, got {mask.dtype} with shape {mask.shape}")
    if not mask.any():  # the transform of an empty mask is all zeros; skip the cv2 call
        return np.zeros(mask.shape, dtype=np.float32)
    # The whole padded image is transformed, never a crop: cv2's "precise" transform rounds
    # differently with the image layout (a few ulp), which would change tie-breaking.
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    mask_size = cv2.DIST_MASK_PRECISE if exact else cv2.DIST_MASK_5
    with _opencv_own_transform():
        return cv2.distanceTransform(padded, cv2.DIST_L2, mask_size)[1:-1, 1:-1]


@contextlib.contextmanager
def _opencv_own_transform() -> Iterator[None]:
    """Run OpenCV's own distance transforms, not Intel IPP's, for results independent of threads.

    With one OpenCV thread (``cv2.setNumThreads(1)``, as training and evaluation runs set) OpenCV
    hands the precise transform to IPP, whose values differ from the exact ones by an ulp at some
    pixels, which moves first-maximum ties; IPP's 5x5 chamfer sums float weights where OpenCV's
    own uses 16-bit fixed point. OpenCV's own code is exact (precise) and deterministic at any
    thread count, and is what :mod:`iseg.interaction.torch_distance` reproduces on a device.
    ``setUseIPP`` is per thread in OpenCV, and restored after the call.
    """
    previous = cv2.ipp.useIPP()
    if previous:
        cv2.ipp.setUseIPP(False)
    try:
        yield
    finally:
        if previous:
            cv2.ipp.setUseIPP(True)


def error_distances(
    gt_fg: np.ndarray,
    pred_fg: np.ndarray,
    valid: np.ndarray | None = None,
    pred_bg: np.ndarray | None = None,
    exact: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Distance maps (float32, writable) of the false-negative and false-positive regions."""
    fn, fp = error_masks(gt_fg, pred_fg, valid, pred_bg)
    return padded_distance(fn, exact), padded_distance(fp, exact)
