"""Writers of small SBD datasets in the real on-disk format, for tests of training-data code.

``write_sbd_dataset(root)`` lays out ``img/<name>.jpg`` (cv2 JPEGs), ``inst/<name>.mat`` (a MATLAB
``GTinst`` struct with fields Segmentation, Boundaries, Categories, written by
``scipy.io.savemat``) and ``train.txt`` / ``val.txt``. Every image is different (random colours
and positions from ``seed``), every instance is a filled ellipse in its own column of the image, so
no instance hides another and none is "buggy" (ellipses fill ~78% of their box).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import scipy.io
import scipy.sparse


def make_scene(
    rng: np.random.Generator, image_size: Sequence[int] = (48, 64), num_instances: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 H×W×3 RGB image, uint8 H×W label map 0 bg / 1..n instances): n ellipses side by side."""
    height, width = (int(v) for v in image_size)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(image, (5, 5), 2.0)
    labels = np.zeros((height, width), np.uint8)
    column = width / max(num_instances, 1)
    for k in range(1, num_instances + 1):
        centre = (int(column * (k - 0.5)), int(rng.uniform(0.35, 0.65) * height))
        axes = (max(2, int(column * rng.uniform(0.25, 0.4))), max(2, int(height * rng.uniform(0.2, 0.3))))
        cv2.ellipse(labels, centre, axes, 0, 0, 360, k, -1)
        image[labels == k] = rng.integers(0, 256, 3, dtype=np.uint8)
    return image, labels


def write_instances_mat(path: str | Path, instances: np.ndarray, categories: Sequence[int] | None = None) -> Path:
    """Write an SBD ``inst`` file: GTinst with Segmentation (uint8 map), Boundaries (cell of sparse maps), Categories."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = [int(v) for v in np.unique(instances) if v != 0]
    boundaries = np.empty((len(ids), 1), dtype=object)
    for row, value in enumerate(ids):
        mask = (instances == value).astype(np.uint8)
        edge = mask - cv2.erode(mask, np.ones((3, 3), np.uint8))
        boundaries[row, 0] = scipy.sparse.csc_matrix(edge.astype(bool))
    if categories is None:
        categories = [15] * len(ids)  # VOC 'person'
    gtinst = {
        "Segmentation": np.asarray(instances, np.uint8),
        "Boundaries": boundaries,
        "Categories": np.asarray(categories, np.uint8).reshape(-1, 1),
    }
    scipy.io.savemat(str(path), {"GTinst": gtinst})
    return path


def write_sbd_sample(root: str | Path, name: str, image: np.ndarray, instances: np.ndarray) -> None:
    """Write ``img/<name>.jpg`` (RGB array, saved through cv2 as BGR) and ``inst/<name>.mat``."""
    root = Path(root)
    (root / "img").mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(root / "img" / f"{name}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {root / 'img' / name}.jpg")
    write_instances_mat(root / "inst" / f"{name}.mat", instances)


def write_sbd_dataset(
    root: str | Path,
    num_train: int = 4,
    num_val: int = 2,
    image_size: Sequence[int] = (48, 64),
    num_instances: Sequence[int] = (1, 3),
    seed: int = 0,
) -> dict[str, list[str]]:
    """A small SBD under ``root``; returns ``{'train': names, 'val': names}`` as listed in the split files.

    Names look like the real ones (``2008_000001``...); each image has
    ``num_instances[0]..num_instances[1]`` instances (inclusive).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    names: dict[str, list[str]] = {}
    counter = 0
    for split, count in (("train", num_train), ("val", num_val)):
        names[split] = []
        for _ in range(count):
            counter += 1
            name = f"2008_{counter:06d}"
            image, instances = make_scene(rng, image_size, int(rng.integers(num_instances[0], num_instances[1] + 1)))
            write_sbd_sample(root, name, image, instances)
            names[split].append(name)
        (root / f"{split}.txt").write_text("".join(f"{n}\n" for n in names[split]))
    return names
