"""DAVIS-345 (the BRS subset) and COCO_MVal: one object per image, any non-zero colour is object.

Decoding (RITM ``DavisDataset``, reference §6): the 3-channel ``cv2.imread`` of the mask, max over
the channels, > 0 -> 1. There is no ignore region; for DAVIS the object is the union of all the
frame's objects. COCO_MVal (800 instances) is distributed in the same ``img/`` + ``gt/`` layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from iseg.data.eval.base import EvalEntry, EvaluationSet
from iseg.data.eval.layout import paired_folders
from iseg.data.image_io import read_mask


class DavisDataset(EvaluationSet):
    """Images in ``img/``, masks matched by stem in ``gt/``; sorted by image file name.

    ``check_masks``, ``check_files`` and ``skip_bad_samples`` as in
    :class:`~iseg.data.eval.grabcut.GrabCutDataset`.
    """

    title = "DAVIS"
    config_key = "davis"
    object_rule = "non-zero pixel"

    def __init__(
        self,
        root: str | Path,
        images_dir: str = "img",
        masks_dir: str = "gt",
        check_masks: bool = True,
        check_files: str = "header",
        skip_bad_samples: bool = False,
    ) -> None:
        super().__init__(root)
        entries, self.exclusions = paired_folders(
            self.title,
            self.root,
            images_dir,
            masks_dir,
            "images, any extension (e.g. 000.jpg)",
            "one mask per image, same file stem (e.g. 000.png): any non-zero colour = object",
        )
        entries = self.drop_empty(entries) if check_masks else entries
        self.entries = self.check_files(entries, check_files, skip_bad_samples)

    def load_mask(self, path: Path) -> np.ndarray:
        """Max over the colour channels of the 3-channel decoding (pairwise: numpy's axis-2 max is slow)."""
        mask = read_mask(path)
        return np.maximum(np.maximum(mask[:, :, 0], mask[:, :, 1]), mask[:, :, 2])

    def to_gt(self, raw: np.ndarray, entry: EvalEntry) -> np.ndarray:
        """Non-zero -> 1."""
        return (raw > 0).astype(np.int8)


class CocoMValDataset(DavisDataset):
    """COCO_MVal (10 instances per COCO category from val2017), loaded exactly like DAVIS."""

    title = "COCO_MVal"
    config_key = "coco_mval"
