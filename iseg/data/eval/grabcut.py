"""GrabCut and Berkeley: one object per image, masks with a 128 "unknown" band ignored.

Decoding (RITM ``GrabCutDataset``, reference §6): channel 0 of the 3-channel ``cv2.imread``;
128 -> -1 (ignore), > 128 -> 1. The reference then keeps the pixels equal to 1 as the object, so
a stored value 1 also counts as object and every other value (2..127) as background; this is
reproduced, so that 0/1 masks load as the reference loads them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from iseg.data.eval.base import EvalEntry, EvaluationSet
from iseg.data.eval.layout import paired_folders
from iseg.data.image_io import read_mask

BERKELEY_VARIANTS = {"ritm": ("images", "masks"), "fcfi": ("images-f-BRS/test", "masks-f-BRS/test")}


class GrabCutDataset(EvaluationSet):
    """Images in ``images_dir``, masks matched by stem in ``masks_dir``; sorted by image file name.

    Args:
        root: dataset folder.
        images_dir, masks_dir: sub-folders (GrabCut: ``data_GT``, ``boundary_GT``).
        check_masks: decode every mask now so that empty ones become ``exclusions`` (images
            stay lazy); False defers all decoding, and an empty GT then raises on access.
        check_files, skip_bad_samples: the start-up check of the files
            (:meth:`~iseg.data.eval.base.EvaluationSet.check_files`).
    """

    title = "GrabCut"
    config_key = "grabcut"
    object_rule = "object pixel (value 1 or > 128 in channel 0)"

    def __init__(
        self,
        root: str | Path,
        images_dir: str = "data_GT",
        masks_dir: str = "boundary_GT",
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
            "images, any extension (e.g. 106024.jpg)",
            "mask per image, same stem (e.g. 106024.bmp): 0 bg, 128 ignore, >128 object",
        )
        entries = self.drop_empty(entries) if check_masks else entries
        self.entries = self.check_files(entries, check_files, skip_bad_samples)

    def load_mask(self, path: Path) -> np.ndarray:
        """Channel 0 of the 3-channel decoding, as the reference reads it."""
        return read_mask(path)[:, :, 0]

    def to_gt(self, raw: np.ndarray, entry: EvalEntry) -> np.ndarray:
        """128 -> -1, 1 and > 128 -> 1, anything else -> 0."""
        gt = ((raw > 128) | (raw == 1)).astype(np.int8)
        gt[raw == 128] = -1
        return gt


class BerkeleyDataset(GrabCutDataset):
    """Berkeley (96 images / 100 instances, one mask file per instance) with GrabCut's decoding.

    ``variant='ritm'`` reads ``images/`` and ``masks/``; ``variant='fcfi'`` reads FCFI's
    ``images-f-BRS/test`` and ``masks-f-BRS/test``.
    """

    title = "Berkeley"
    config_key = "berkeley"

    def __init__(
        self,
        root: str | Path,
        variant: str = "ritm",
        check_masks: bool = True,
        check_files: str = "header",
        skip_bad_samples: bool = False,
    ) -> None:
        if variant not in BERKELEY_VARIANTS:
            raise ValueError(f"Berkeley variant must be one of {sorted(BERKELEY_VARIANTS)}, got {variant!r}")
        images_dir, masks_dir = BERKELEY_VARIANTS[variant]
        super().__init__(
            root, images_dir=images_dir, masks_dir=masks_dir, check_masks=check_masks,
            check_files=check_files, skip_bad_samples=skip_bad_samples,
        )
