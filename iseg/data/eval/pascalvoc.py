"""PascalVOC instances: one sample per (image, instance) of ``SegmentationObject``.

RITM variant (reference §6, split 'test'): masks are read with ``cv2.imread`` in colour and
converted BGR -> gray, so an instance id is the gray value of its palette colour; GT = pixels of
that gray value -> 1, gray 220 (the VOC boundary colour 224,224,192) -> -1. The sample list is
``ImageSets/Segmentation/test.pickle`` = (names, instance ids) when present. That file is not
distributed, so without it the list is built from ``val.txt``: names in file order, for each the
gray values other than 0 and 220 in ascending order (the reference reports 1449 images / 3417
instances; palette colours that share a gray value merge, so counts can differ slightly).

FCFI variant (split 'val'): folder ``SegmentationObjectLabel``, ignore value 255; the list (gray
values other than 0 and 255 per ``<split>.txt`` name) is cached as ``<root>/<split>_images_and_ids_list.pkl``
like FCFI does, and the sample masks are read with ``cv2.IMREAD_GRAYSCALE`` as FCFI reads them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from iseg.data.eval.base import EvalEntry, EvaluationSet
from iseg.data.eval.instance_cache import InstanceList, cached_instance_list, check_instance_list, load_pickle
from iseg.data.eval.layout import read_name_list, require_layout
from iseg.data.image_io import read_mask

VOC_VARIANTS = {
    "ritm": {"masks": "SegmentationObject", "ignore": 220, "splits": ("test",)},
    "fcfi": {"masks": "SegmentationObjectLabel", "ignore": 255, "splits": ("val", "train", "trainval")},
}
SPLIT_DIR = "ImageSets/Segmentation"


def read_gray_bgr(path: Path) -> np.ndarray:
    """Colour decoding converted BGR -> gray, the reference's instance-id map."""
    return cv2.cvtColor(read_mask(path), cv2.COLOR_BGR2GRAY)


class PascalVOCDataset(EvaluationSet):
    """PascalVOC instance samples named ``<name>#<id>``.

    Args:
        root: the ``VOC2012`` folder.
        split: 'test' for the RITM variant; 'val' (default for FCFI), 'train' or 'trainval' for FCFI.
        variant: 'ritm' or 'fcfi' (see the module docstring).
        cache_dir: where a computed list is cached (see ``instance_cache``).
        check_masks: when the list comes from ``test.pickle``, decode the masks now so that ids
            absent from their mask become ``exclusions`` (lists built from masks never have any).
        check_files, skip_bad_samples: the start-up check of the files
            (:meth:`~iseg.data.eval.base.EvaluationSet.check_files`).
    """

    title = "PascalVOC"
    config_key = "pascalvoc"

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        variant: str = "ritm",
        cache_dir: str | Path | None = None,
        check_masks: bool = True,
        check_files: str = "header",
        skip_bad_samples: bool = False,
    ) -> None:
        super().__init__(root)
        if variant not in VOC_VARIANTS:
            raise ValueError(f"PascalVOC variant must be one of {sorted(VOC_VARIANTS)}, got {variant!r}")
        spec = VOC_VARIANTS[variant]
        split = split or spec["splits"][0]
        if split not in spec["splits"]:
            raise ValueError(f"PascalVOC variant {variant!r} supports splits {list(spec['splits'])}, got {split!r}")
        self.variant, self.split = variant, split
        self.masks_dir: str = spec["masks"]
        self.ignore_value: int = spec["ignore"]
        self.object_rule = f"pixel of that gray value ({self.masks_dir}, ignore {self.ignore_value})"
        pickle_file = self.root / SPLIT_DIR / "test.pickle"
        use_pickle = split == "test" and pickle_file.is_file()
        list_file = "test.pickle" if use_pickle else ("val.txt" if split == "test" else f"{split}.txt")
        require_layout(
            self.title,
            self.root,
            [
                ("JPEGImages/", "<name>.jpg images"),
                (f"{self.masks_dir}/", f"<name>.png instance masks (ignore value {self.ignore_value})"),
                (f"{SPLIT_DIR}/{list_file}", "(names, ids) pickle" if use_pickle else "sample names, one per line"),
            ],
            ["JPEGImages", self.masks_dir, f"{SPLIT_DIR}/{list_file}"],
        )
        split_path = self.root / SPLIT_DIR / list_file
        if use_pickle:
            pairs = self._read_test_pickle(split_path)
            names = list(dict.fromkeys(name for name, _ in pairs))
            self.cache_file: Path | None = None
        else:
            names = read_name_list(split_path)
        for name in names:
            for path in (self._image(name), self._mask(name)):
                if not path.is_file():
                    raise FileNotFoundError(f"PascalVOC: {path} (listed in {split_path}) not found")
        if not use_pickle:
            pairs, self.cache_file = cached_instance_list(
                self.root,
                split_path,
                names,
                f"{split}_images_and_ids_list.pkl" if variant == "fcfi" else "ritm_test_from_val_ids_list.pkl",
                lambda: self._build_list(names),
                Path(cache_dir) if cache_dir is not None else None,
                reference_name=variant == "fcfi",
            )
            with_instances = {name for name, _ in pairs}
            self.exclusions = [
                (name, f"no instance in {self._mask(name)}") for name in names if name not in with_instances
            ]
        if not pairs:
            raise ValueError(f"PascalVOC: no instance in any of the {len(names)} masks of {split_path}")
        entries = [EvalEntry(f"{name}#{obj_id}", self._image(name), self._mask(name), obj_id) for name, obj_id in pairs]
        entries = self.drop_empty(entries) if use_pickle and check_masks else entries
        self.entries = self.check_files(entries, check_files, skip_bad_samples)

    def _image(self, name: str) -> Path:
        return self.root / "JPEGImages" / f"{name}.jpg"

    def _mask(self, name: str) -> Path:
        return self.root / self.masks_dir / f"{name}.png"

    def _read_test_pickle(self, path: Path) -> InstanceList:
        try:
            data = load_pickle(path)
            if not (isinstance(data, (list, tuple)) and len(data) == 2 and len(data[0]) == len(data[1])):
                raise ValueError("expected a (sample names, instance ids) pair of equal-length lists")
            names = list(data[0])
            return check_instance_list(list(zip(names, data[1])), names, ordered=False)
        except Exception as exc:
            raise ValueError(f"PascalVOC: invalid {path}: {exc}") from None

    def _build_list(self, names: list[str]) -> InstanceList:
        pairs: InstanceList = []
        for name in names:
            values = np.unique(read_gray_bgr(self._mask(name)))
            pairs.extend((name, int(v)) for v in values if v != 0 and v != self.ignore_value)
        return pairs

    def load_mask(self, path: Path) -> np.ndarray:
        """Gray instance map: BGR -> gray (RITM), ``IMREAD_GRAYSCALE`` (FCFI)."""
        if self.variant == "fcfi":
            return read_mask(path, cv2.IMREAD_GRAYSCALE)
        return read_gray_bgr(path)

    def to_gt(self, raw: np.ndarray, entry: EvalEntry) -> np.ndarray:
        """Instance gray value -> 1, ignore value -> -1, else 0."""
        if entry.object_id == self.ignore_value:
            raise ValueError(
                f"PascalVOC: sample {entry.name!r} uses the ignore value {self.ignore_value} as instance id"
            )
        gt = (raw == entry.object_id).astype(np.int8)
        gt[raw == self.ignore_value] = -1
        return gt
