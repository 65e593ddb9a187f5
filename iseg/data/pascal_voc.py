"""PASCAL VOC 2012 ``SegmentationObject`` as a training source (IOG's data, s2m_iog_forte.md §2.5).

Layout of the ``VOC2012`` folder: ``JPEGImages/<name>.jpg``, ``SegmentationObject/<name>.png``
(palette PNGs: index k = instance k, 0 background, 255 the void border) and
``ImageSets/Segmentation/<split>.txt``. Every instance is a root object; 255 is an ignore region
(gt -1: never a target pixel, left out of IOG's loss).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from iseg.data.eval.base import read_image
from iseg.data.eval.layout import read_name_list
from iseg.data.image_io import read_label_map
from iseg.data.sample import InstanceSample
from iseg.data.source import SampleSource
from iseg.data.training_layout import require_listed_files, require_training_layout

VOID = 255
SPLITS = ("train", "val", "trainval")


class PascalVOCSource(SampleSource):
    """VOC 2012 images with their ``SegmentationObject`` instances; void (255) is ignore.

    Args:
        root: the ``VOC2012`` folder.
        split: 'train', 'val' or 'trainval' (``ImageSets/Segmentation/<split>.txt``).
        exclude: names to leave out (e.g. another set's validation images).
    """

    def __init__(self, root: str | Path, split: str = "train", exclude: list[str] | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"PASCAL VOC split must be one of {list(SPLITS)}, got {split!r}")
        self.root = Path(root).expanduser()
        self.split = split
        require_training_layout(
            "PASCAL VOC",
            self.root,
            [
                ("JPEGImages/", "<name>.jpg images"),
                ("SegmentationObject/", "<name>.png palette PNGs: k = instance k, 0 background, 255 void"),
                (f"ImageSets/Segmentation/{split}.txt", "image names, one per line"),
            ],
            ["JPEGImages", "SegmentationObject", f"ImageSets/Segmentation/{split}.txt"],
        )
        self.split_file = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        excluded = set(exclude or ())
        self.names = [name for name in read_name_list(self.split_file) if name not in excluded]
        require_listed_files("PASCAL VOC", self.split_file, (self.image_path(n) for n in self.names))
        require_listed_files("PASCAL VOC", self.split_file, (self.mask_path(n) for n in self.names))

    def image_path(self, name: str) -> Path:
        return self.root / "JPEGImages" / f"{name}.jpg"

    def mask_path(self, name: str) -> Path:
        return self.root / "SegmentationObject" / f"{name}.png"

    def __len__(self) -> int:
        return len(self.names)

    def get_sample(self, index: int, rng: np.random.Generator | None = None) -> InstanceSample:
        if not 0 <= index < len(self.names):
            raise IndexError(f"PASCAL VOC {self.split} index {index} out of range [0, {len(self.names)})")
        name = self.names[index]
        image = read_image(self.image_path(name))
        labels = read_label_map(self.mask_path(name))
        if labels.shape != image.shape[:2]:
            raise ValueError(
                f"PASCAL VOC: image {self.image_path(name)} is {image.shape[0]}x{image.shape[1]} but its mask "
                f"{self.mask_path(name)} is {labels.shape[0]}x{labels.shape[1]}"
            )
        return InstanceSample.from_label_map(image, labels, ignore_values=(VOID,), name=name)


class PascalSBDSource(SampleSource):
    """IOG's ``use_sbd`` training set: VOC ``train`` + SBD ``train`` and ``val``, without VOC ``val`` images.

    Args:
        root: the ``VOC2012`` folder (its val list is what SBD images are excluded by).
        sbd_root: the SBD ``dataset`` folder (``img/``, ``inst/``, ``train.txt``, ``val.txt``).
        split: the VOC part ('train' in the reference).
        buggy_mask_thresh: SBD's instance filter (0 keeps every instance, as IOG's loader).
    """

    def __init__(self, root: str | Path, sbd_root: str | Path, split: str = "train", buggy_mask_thresh: float = 0.0) -> None:
        from iseg.data.sbd import SBDSource

        self.voc = PascalVOCSource(root, split)
        voc_val = set(read_name_list(self.voc.root / "ImageSets" / "Segmentation" / "val.txt"))
        self.sbd = [SBDSource(sbd_root, split, buggy_mask_thresh) for split in ("train", "val")]
        self.items: list[tuple[SampleSource, int]] = [(self.voc, i) for i in range(len(self.voc))]
        seen = set(self.voc.names)
        for source in self.sbd:
            for index, name in enumerate(source.names):
                if name not in voc_val and name not in seen:
                    seen.add(name)
                    self.items.append((source, index))

    def __len__(self) -> int:
        return len(self.items)

    def get_sample(self, index: int, rng: np.random.Generator | None = None) -> InstanceSample:
        if not 0 <= index < len(self.items):
            raise IndexError(f"PASCAL VOC + SBD index {index} out of range [0, {len(self.items)})")
        source, inner = self.items[index]
        return source.get_sample(inner, rng)
