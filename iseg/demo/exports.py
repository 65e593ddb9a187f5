"""What the demo lets a person download: masks as PNG and objects as COCO run-length encodings."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def png_bytes(image: np.ndarray) -> bytes:
    """PNG of a uint8 (H, W) or RGB(A) (H, W, 3|4) array."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image.dtype} {image.shape} array as PNG")
    return encoded.tobytes()


def binary_mask_png(labels: np.ndarray, object_id: int) -> bytes:
    """One object's mask: 255 on the object, 0 elsewhere."""
    return png_bytes(np.where(labels == object_id, 255, 0).astype(np.uint8))


def coco_annotations(labels: np.ndarray, object_ids: Sequence[int]) -> list[dict]:
    """One COCO-style annotation per object: ``segmentation`` as compressed RLE (``counts`` a
    string, as in COCO json files), with ``area`` and ``bbox`` [x, y, w, h] from pycocotools."""
    annotations = []
    for object_id in object_ids:
        rle = mask_utils.encode(np.asfortranarray(labels == object_id, dtype=np.uint8))
        annotations.append(
            {
                "object_id": int(object_id),
                "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
                "area": int(mask_utils.area(rle)),
                "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            }
        )
    return annotations
