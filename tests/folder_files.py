"""Writers of small folder datasets (``images/`` + ``masks/`` label-map PNGs) for tests.

``write_folder_dataset(root)`` writes ``images/<stem>.png`` (RGB through cv2) and
``masks/<stem>.png`` (uint8 label maps: 0 background, k instance k, optionally a 255 "ignore"
band around the first instance), and optionally ``train.txt`` / ``val.txt``. The scenes are those
of :func:`tests.sbd_files.make_scene`: instances side by side, every image different.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from tests.sbd_files import make_scene

IGNORE_VALUE = 255


def write_folder_sample(root: str | Path, stem: str, image: np.ndarray, labels: np.ndarray, image_ext: str = ".png") -> None:
    """Write ``images/<stem><image_ext>`` (RGB array) and ``masks/<stem>.png`` (label map, as is)."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for path, array in ((root / "images" / f"{stem}{image_ext}", cv2.cvtColor(image, cv2.COLOR_RGB2BGR)),
                        (root / "masks" / f"{stem}.png", labels)):
        if not cv2.imwrite(str(path), array):
            raise OSError(f"could not write {path}")


def write_folder_dataset(
    root: str | Path,
    num_images: int = 6,
    image_size: Sequence[int] = (48, 64),
    num_instances: Sequence[int] = (1, 3),
    ignore_band: bool = False,
    splits: dict[str, Sequence[str]] | None = None,
    seed: int = 0,
) -> list[str]:
    """A small folder dataset under ``root``; returns the image stems (``img_000``, ...) in order.

    ``ignore_band`` marks a 1-px band around instance 1 with 255; ``splits`` (split -> stems)
    writes ``<split>.txt`` files.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    stems = []
    for i in range(num_images):
        image, labels = make_scene(rng, image_size, int(rng.integers(num_instances[0], num_instances[1] + 1)))
        if ignore_band:
            first = (labels == 1).astype(np.uint8)
            band = cv2.dilate(first, np.ones((3, 3), np.uint8)) > first
            labels[band & (labels == 0)] = IGNORE_VALUE
        stem = f"img_{i:03d}"
        write_folder_sample(root, stem, image, labels)
        stems.append(stem)
    for split, names in (splits or {}).items():
        (root / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    return stems
