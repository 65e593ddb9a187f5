"""Writer of a small PASCAL VOC 2012 folder in the real on-disk format, for tests of training-data code.

``write_voc_dataset(root)`` lays out ``JPEGImages/<name>.jpg``, ``SegmentationObject/<name>.png``
(palette PNGs written by PIL: index k = instance k, 0 background, 255 a one-pixel void band around
every instance, as VOC's boundaries) and ``ImageSets/Segmentation/{train,val}.txt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from tests.sbd_files import make_scene

VOC_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128] + [0] * (3 * 250) + [224, 224, 192]


def write_voc_dataset(
    root: str | Path, num_train: int = 3, num_val: int = 2, image_size: Sequence[int] = (48, 64), seed: int = 0
) -> dict[str, list[str]]:
    """A small VOC2012 under ``root``; returns ``{'train': names, 'val': names}``."""
    root = Path(root)
    for folder in ("JPEGImages", "SegmentationObject", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names: dict[str, list[str]] = {}
    counter = 0
    for split, count in (("train", num_train), ("val", num_val)):
        names[split] = []
        for _ in range(count):
            counter += 1
            name = f"2007_{counter:06d}"
            image, labels = make_scene(rng, image_size, int(rng.integers(1, 4)))
            band = (cv2.dilate(labels, np.ones((3, 3), np.uint8)) != labels) | (cv2.erode(labels, np.ones((3, 3), np.uint8)) != labels)
            labels = np.where(band, 255, labels).astype(np.uint8)
            cv2.imwrite(str(root / "JPEGImages" / f"{name}.jpg"), image[:, :, ::-1])
            png = Image.fromarray(labels, mode="P")
            png.putpalette(VOC_PALETTE)
            png.save(root / "SegmentationObject" / f"{name}.png")
            names[split].append(name)
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{n}\n" for n in names[split]))
    return names
