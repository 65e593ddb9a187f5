"""Decoding images the way the reference loaders do (OpenCV colour decode, RGB channel order).

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
