"""A user's own evaluation set: ``images/`` + ``masks/`` matched by file stem.

Masks are read as label maps (8- or 16-bit; a palette PNG gives its indices; a 3-channel mask
must be gray, i.e. equal channels; see :func:`iseg.data.image_io.read_label_map`) and interpreted by ``mask_mode``, the same rule for every mask of the set:

- ``'binary'``: one object per image: 0 -> background, ``ignore_value`` -> -1, any other
  value -> object. Samples are named by the image file name.
- ``'instances'``: an instance-id map: 0 -> background, ``ignore_value`` -> -1 in every sample
  of the image, every other value -> one object, in ascending order. Samples are named
  ``<image file name>#<id>``.

``ignore_value`` is 255 in both modes, the rule of the training folder set
(:class:`iseg.data.folder.FolderSource`): a mask of only 0 and 255 has no object and is excluded
with that reason. Masks that mark objects with 255 (0/255 binary masks) need ``ignore_value=None``
(``data.folder.ignore_value=null``); when no mask of the set has an object the error says so.

Files are checked when the set is built (``check_files``, ``skip_bad_samples``: see
:meth:`~iseg.data.eval.base.EvaluationSet.check_files`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from iseg.data.eval.base import EvalEntry, EvaluationSet
from iseg.data.eval.layout import paired_folders
from iseg.data.image_io import read_label_map

MASK_MODES = ("binary", "instances")
IGNORE_VALUE = 255


class FolderDataset(EvaluationSet):
    """Images and masks matched by stem, sorted by image file name (see the module docstring).

    Args:
        root: dataset folder.
        mask_mode: 'binary' or 'instances'.
        ignore_value: mask value that becomes -1 (255, as in training; None: none); 'auto' is 255.
        images_dir, masks_dir: sub-folder names.
        check_files: start-up check of images and masks: 'header', 'decode' or 'off'.
        skip_bad_samples: samples with unusable files become exclusions instead of an error.
    """

    title = "folder"
    config_key = "folder"

    def __init__(
        self,
        root: str | Path,
        mask_mode: str = "binary",
        ignore_value: int | None | str = IGNORE_VALUE,
        images_dir: str = "images",
        masks_dir: str = "masks",
        check_files: str = "header",
        skip_bad_samples: bool = False,
    ) -> None:
        super().__init__(root)
        if mask_mode not in MASK_MODES:
            raise ValueError(f"folder dataset mask_mode must be one of {list(MASK_MODES)}, got {mask_mode!r}")
        if ignore_value == "auto":
            ignore_value = IGNORE_VALUE
        valid_int = isinstance(ignore_value, int) and not isinstance(ignore_value, bool) and ignore_value > 0
        if ignore_value is not None and not valid_int:
            raise ValueError(
                f"folder dataset ignore_value must be a positive integer, None or 'auto', got {ignore_value!r}"
            )
        self.mask_mode, self.ignore_value = mask_mode, ignore_value
        ignore_text = "no ignore value" if ignore_value is None else f"{ignore_value} ignore"
        object_text = "any other value = object" if mask_mode == "binary" else "each other value = one object"
        self.object_rule = "object pixel (non-zero, non-ignore value)"
        entries, self.exclusions = paired_folders(
            self.title,
            self.root,
            images_dir,
            masks_dir,
            "images, any extension",
            f"one mask per image, same file stem: 0 bg, {ignore_text}, {object_text}",
        )
        entries = self.drop_empty(entries) if mask_mode == "binary" else self._split_instances(entries)
        self.entries = self.check_files(entries, check_files, skip_bad_samples)
        if not self.entries:
            self._refuse_empty()

    def _split_instances(self, entries: list[EvalEntry]) -> list[EvalEntry]:
        result: list[EvalEntry] = []
        for entry in entries:
            raw = self.read_mask_once(entry.mask_path)
            if raw is None:
                result.append(entry)  # unreadable: check_files reports it
                continue
            values = np.unique(raw)
            ids = [int(v) for v in values if v != 0 and v != self.ignore_value]
            if not ids:
                self.exclusions.append((entry.name, f"no instance in {entry.mask_path}{self._ignore_hint(values)}"))
                self._dropped.append(entry)
            result.extend(EvalEntry(f"{entry.name}#{i}", entry.image_path, entry.mask_path, i) for i in ids)
        return result

    def _ignore_hint(self, values: np.ndarray) -> str:
        if self.ignore_value is None or self.ignore_value not in values:
            return ""
        return (f" (only 0 and {self.ignore_value} = ignore; masks that mark objects with {self.ignore_value} "
                "need ignore_value=null)")

    def empty_reason(self, raw: np.ndarray, entry: EvalEntry) -> str:
        return super().empty_reason(raw, entry) + self._ignore_hint(np.unique(raw))

    def _refuse_empty(self) -> None:
        """No sample left: say why, with the 255 hint when the masks hold the ignore value."""
        reasons = "\n  ".join(f"{name}: {reason}" for name, reason in self.exclusions[:5])
        hint = ""
        if self.ignore_value is not None and any("= ignore" in reason for _, reason in self.exclusions):
            hint = (f"\n{self.ignore_value} means 'ignore' here, as in training; for masks that mark objects "
                    f"with {self.ignore_value} (0/{self.ignore_value} binary masks) set data.folder.ignore_value=null")
        raise ValueError(
            f"folder evaluation set {self.root}: no sample to evaluate ({len(self.exclusions)} excluded), e.g.:\n"
            f"  {reasons}{hint}"
        )

    def load_mask(self, path: Path) -> np.ndarray:
        """The mask as a 2-D integer array of ids: the same reader as the training folder dataset."""
        return read_label_map(path)

    def to_gt(self, raw: np.ndarray, entry: EvalEntry) -> np.ndarray:
        """Binary: non-zero -> 1; instances: the entry's id -> 1; ignore value -> -1 in both."""
        gt = ((raw != 0) if entry.object_id is None else (raw == entry.object_id)).astype(np.int8)
        if self.ignore_value is not None:
            gt[raw == self.ignore_value] = -1
        return gt
