"""Decoding images and masks the way the reference loaders do (OpenCV decode, RGB channel order),
and label-map masks (instance ids) for training and evaluation folders alike.

OpenCV >= 4.10 decodes straight to RGB (``IMREAD_COLOR_RGB``), which gives the same pixels as
decoding to BGR and converting, without the extra pass over the image.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

_RGB_FLAG = getattr(cv2, "IMREAD_COLOR_RGB", None)


def decode_rgb(path: str | Path) -> np.ndarray | None:
    """uint8 H×W×3 RGB, or None when the file is missing or not an image OpenCV decodes."""
    if _RGB_FLAG is not None:
        return cv2.imread(str(path), _RGB_FLAG)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Mask file decoded with ``cv2.imread(path, flags)``; an unreadable file is an error naming it."""
    mask = cv2.imread(str(path), flags)
    if mask is None:
        raise ValueError(f"cannot read mask {path}: missing, unreadable or not a format OpenCV decodes")
    return mask


def read_label_map(path: Path) -> np.ndarray:
    """A mask file as a 2-D unsigned integer array of ids (palette indices for palette PNGs).

    8- or 16-bit images; a 3-channel mask must be gray (equal channels).
    """
    path = Path(path)
    if path.suffix.lower() == ".png":
        from PIL import Image

        try:
            with Image.open(path) as image:
                if image.mode == "P":
                    return np.asarray(image)
        except OSError:
            pass  # not decodable by PIL: OpenCV below reports the file
    mask = read_mask(path, cv2.IMREAD_UNCHANGED)
    if mask.ndim == 3:
        if mask.shape[2] != 3 or not (mask == mask[:, :, :1]).all():
            raise ValueError(
                f"folder dataset: mask {path} has {mask.shape[2]} channels with different values; "
                "save masks as single-channel (gray) images of instance ids"
            )
        mask = mask[:, :, 0]
    if mask.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"folder dataset: mask {path} must hold 8- or 16-bit integer ids, got {mask.dtype}")
    return mask
