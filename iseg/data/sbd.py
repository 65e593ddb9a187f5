"""SBD training data (RITM ``SBDDataset``, reference §2.1 and §6).

Layout: ``img/<name>.jpg``, ``inst/<name>.mat`` (a ``GTinst`` struct whose first field,
``Segmentation``, is the H×W instance map: 0 = background, k = instance k) and ``train.txt`` /
``val.txt``. Every instance of the map is a root object, except "buggy" ones: an instance covering
less than ``buggy_mask_thresh`` (0.08) of its bounding box (pixel count / inclusive bbox area)
becomes background, as in the reference.

Hard-sample weights: the reference trains on SBD with ``sbd_samples_weights.pkl`` (RITM's
``assets/``), a list of ``(index, image_name, score)`` tuples; image ``index`` is drawn with
probability ∝ (1 − score)^γ, γ = 1.25, so images the reference model found hard come up more often.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from iseg.data.eval.base import read_image
from iseg.data.eval.layout import read_name_list
from iseg.data.eval.sbd import load_sbd_instances
from iseg.data.sample import InstanceSample
from iseg.data.source import SampleSource
from iseg.data.training_layout import require_listed_files, require_training_layout

SPLITS = ("train", "val")


def remove_buggy_instances(instances: np.ndarray, threshold: float) -> np.ndarray:
    """Zero (in place) instances whose area / inclusive-bbox area is below ``threshold``; returns the map."""
    if threshold <= 0.0 or not instances.any():
        return instances
    areas = np.bincount(instances.ravel())
    for value, box in enumerate(ndimage.find_objects(instances), start=1):
        if box is None:
            continue
        box_area = (box[0].stop - box[0].start) * (box[1].stop - box[1].start)
        if areas[value] / box_area < threshold:
            instances[box][instances[box] == value] = 0
    return instances


def load_sample_weights(path: str | Path, names: Sequence[str], gamma: float) -> np.ndarray:
    """Per-sample probabilities ∝ (1 − score)^gamma from a reference ``(index, name, score)`` pickle.

    The file must list every name of the split exactly once, at its index in the split file:
    weights made for another list would silently favour the wrong images.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"SBD sample weights file {path} not found (RITM's assets/sbd_samples_weights.pkl)")
    try:
        with open(path, "rb") as f:
            entries = pickle.load(f)
        rows = [(int(index), str(name), float(score)) for index, name, score in entries]
    except Exception as exc:
        raise ValueError(
            f"SBD sample weights {path}: expected a pickled list of (index, image_name, score) tuples ({exc})"
        ) from None
    scores = np.full(len(names), np.nan)
    for index, name, score in rows:
        if not 0 <= index < len(names) or names[index] != name:
            listed = repr(names[index]) if 0 <= index < len(names) else f"no entry (the split has {len(names)})"
            raise ValueError(
                f"SBD sample weights {path}: entry ({index}, {name!r}) does not match the split list, whose index "
                f"{index} is {listed}; the weights must be made for this split file"
            )
        if not np.isnan(scores[index]):
            raise ValueError(f"SBD sample weights {path}: index {index} ({name!r}) is listed twice")
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"SBD sample weights {path}: score {score} of {name!r} is outside [0, 1]")
        scores[index] = score
    if np.isnan(scores).any():
        missing = [names[i] for i in np.flatnonzero(np.isnan(scores))[:5]]
        raise ValueError(
            f"SBD sample weights {path}: {int(np.isnan(scores).sum())} of the {len(names)} split images have no "
            f"weight (e.g. {missing})"
        )
    weights = (1.0 - scores) ** gamma
    if weights.sum() <= 0:
        raise ValueError(f"SBD sample weights {path}: every score is 1, so no image could be drawn")
    return weights / weights.sum()


class SBDSource(SampleSource):
    """SBD images with all their (non-buggy) instances as objects.

    Args:
        root: SBD ``dataset`` folder (``img/``, ``inst/``, ``train.txt``, ``val.txt``).
        split: 'train' or 'val'.
        buggy_mask_thresh: instances with area / bbox area below this become background (0 keeps all).
        samples_weights: path of the reference ``sbd_samples_weights.pkl`` (None: uniform); sets
            ``sample_probs``, by which ``InteractiveDataset`` draws every item's image.
        samples_weights_gamma: exponent γ of (1 − score)^γ.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        buggy_mask_thresh: float = 0.08,
        samples_weights: str | Path | None = None,
        samples_weights_gamma: float = 1.25,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"SBD split must be one of {list(SPLITS)}, got {split!r}")
        self.root = Path(root).expanduser()
        self.split = split
        self.buggy_mask_thresh = float(buggy_mask_thresh)
        require_training_layout(
            "SBD",
            self.root,
            [
                ("img/", "<name>.jpg images"),
                ("inst/", "<name>.mat with a GTinst struct (first field Segmentation: 0 bg, k instance k)"),
                ("train.txt", "training image names, one per line"),
                ("val.txt", "validation image names, one per line"),
            ],
            ["img", "inst", f"{split}.txt"],
        )
        self.split_file = self.root / f"{split}.txt"
        self.names = read_name_list(self.split_file)
        require_listed_files("SBD", self.split_file, (self.image_path(n) for n in self.names))
        require_listed_files("SBD", self.split_file, (self.mat_path(n) for n in self.names))
        self._sample_probs = (
            None if samples_weights is None else load_sample_weights(samples_weights, self.names, samples_weights_gamma)
        )

    def image_path(self, name: str) -> Path:
        return self.root / "img" / f"{name}.jpg"

    def mat_path(self, name: str) -> Path:
        return self.root / "inst" / f"{name}.mat"

    def __len__(self) -> int:
        return len(self.names)

    @property
    def sample_probs(self) -> np.ndarray | None:
        return self._sample_probs

    def _check_index(self, index: int) -> str:
        if not 0 <= index < len(self.names):
            raise IndexError(f"SBD {self.split} index {index} out of range [0, {len(self.names)})")
        return self.names[index]

    def instance_map(self, index: int) -> np.ndarray:
        """The instance map of sample ``index`` with buggy instances zeroed (uint8 when values fit)."""
        instances = load_sbd_instances(self.mat_path(self._check_index(index)))
        if instances.min() < 0:
            raise ValueError(f"SBD: {self.mat_path(self.names[index])} has negative instance ids")
        if instances.max() <= np.iinfo(np.uint8).max:  # uint8 keeps cv2 warps and area counts cheap
            instances = instances.astype(np.uint8)
        return remove_buggy_instances(instances, self.buggy_mask_thresh)

    def get_sample(self, index: int, rng: np.random.Generator | None = None) -> InstanceSample:
        name = self._check_index(index)
        image = read_image(self.image_path(name))
        instances = self.instance_map(index)
        if instances.shape != image.shape[:2]:
            raise ValueError(
                f"SBD: image {self.image_path(name)} is {image.shape[0]}x{image.shape[1]} but its instance map "
                f"{self.mat_path(name)} is {instances.shape[0]}x{instances.shape[1]}"
            )
        return InstanceSample.from_label_map(image, instances, name=name)

    def sample_object_ids(self, index: int) -> list[int]:
        # object ids of from_label_map are 0..n-1 over the sorted non-zero values: no image needed
        return list(range(np.count_nonzero(np.bincount(self.instance_map(index).ravel())[1:])))
