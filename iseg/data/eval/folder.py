"""A user's own evaluation set: ``images/`` + ``masks/`` matched by file stem.

Masks are read as label maps (8- or 16-bit; a palette PNG gives its indices; a 3-channel mask
must be gray, i.e. equal channels; see :func:`iseg.data.image_io.read_label_map`) and interpreted by ``mask_mode``, the same rule for every mask of the set:

- ``'binary'``: one object per image: 0 -> background, ``ignore_value`` (none by default) -> -1,
  any other value -> object. Samples are named by the image file name.
- ``'instances'``: an instance-id map: 0 -> background, ``ignore_value`` (255 by default) -> -1
  in every sample of the image, every other value -> one object, in ascending order. Samples
  are named ``<image file name>#<id>``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from iseg.data.eval.base import EvalEntry, EvaluationSet
from iseg.data.eval.layout import pair_by_stem, require_layout
from iseg.data.image_io import read_label_map

MASK_MODES = ("binary", "instances")
DEFAULT_IGNORE = {"binary": None, "instances": 255}


class FolderDataset(EvaluationSet):
    """Images and masks matched by stem, sorted by image file name (see the module docstring).

    Args:
        root: dataset folder.
        mask_mode: 'binary' or 'instances'.
        ignore_value: mask value that becomes -1; 'auto' = None for binary, 255 for instances.
        images_dir, masks_dir: sub-folder names.
    """

    title = "folder"

    def __init__(
        self,
        root: str | Path,
        mask_mode: str = "binary",
        ignore_value: int | None | str = "auto",
        images_dir: str = "images",
        masks_dir: str = "masks",
    ) -> None:
        super().__init__(root)
        if mask_mode not in MASK_MODES:
            raise ValueError(f"folder dataset mask_mode must be one of {list(MASK_MODES)}, got {mask_mode!r}")
        if ignore_value == "auto":
            ignore_value = DEFAULT_IGNORE[mask_mode]
        valid_int = isinstance(ignore_value, int) and not isinstance(ignore_value, bool) and ignore_value > 0
        if ignore_value is not None and not valid_int:
            raise ValueError(
                f"folder dataset ignore_value must be a positive integer, None or 'auto', got {ignore_value!r}"
            )
        self.mask_mode, self.ignore_value = mask_mode, ignore_value
        ignore_text = "no ignore value" if ignore_value is None else f"{ignore_value} ignore"
        object_text = "any other value = object" if mask_mode == "binary" else "each other value = one object"
        self.object_rule = "object pixel (non-zero, non-ignore value)"
        require_layout(
            self.title,
            self.root,
            [
                (f"{images_dir}/", "images, any extension"),
                (f"{masks_dir}/", f"one mask per image, same file stem: 0 bg, {ignore_text}, {object_text}"),
            ],
            [images_dir, masks_dir],
        )
        entries, self.exclusions = pair_by_stem(self.title, self.root / images_dir, self.root / masks_dir)
        if mask_mode == "binary":
            self.entries = self.drop_empty(entries)
        else:
            self.entries = self._split_instances(entries)

    def _split_instances(self, entries: list[EvalEntry]) -> list[EvalEntry]:
        result: list[EvalEntry] = []
        for entry in entries:
            ids = [int(v) for v in np.unique(self.load_mask(entry.mask_path)) if v != 0 and v != self.ignore_value]
            if not ids:
                self.exclusions.append((entry.name, f"no instance in {entry.mask_path}"))
            result.extend(EvalEntry(f"{entry.name}#{i}", entry.image_path, entry.mask_path, i) for i in ids)
        return result

    def load_mask(self, path: Path) -> np.ndarray:
        """The mask as a 2-D integer array of ids: the same reader as the training folder dataset."""
        return read_label_map(path)

    def to_gt(self, raw: np.ndarray, entry: EvalEntry) -> np.ndarray:
        """Binary: non-zero -> 1; instances: the entry's id -> 1; ignore value -> -1 in both."""
        gt = ((raw != 0) if entry.object_id is None else (raw == entry.object_id)).astype(np.int8)
        if self.ignore_value is not None:
            gt[raw == self.ignore_value] = -1
        return gt
