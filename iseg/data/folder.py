"""A user's own training data: ``images/`` + ``masks/``, the layout of the evaluation folder set.

Layout::

    root/
      images/<stem>.<ext>    any format OpenCV reads (jpg, png, ...)
      masks/<stem>.png       one mask per image, matched by file stem
      train.txt, val.txt     optional: image stems of each split, one per line

Masks are single-channel label maps (8- or 16-bit PNG; a palette PNG gives its indices; a
3-channel mask must be gray). With ``mask_mode='instances'`` (the default) 0 is background,
``ignore_value`` (255 by default, like VOC's boundary label) is "don't care" (-1 in the target,
no click is placed there), and every other value is one instance. ``mask_mode='binary'`` treats
every other value as one single object. A mask of only background is a valid sample (a
background crop); the dataset's ``keep_background_prob`` decides how often one is used.

Splits: with ``train.txt`` / ``val.txt`` in the root, each split is the listed images. Without
them the images (sorted by name) are shuffled with ``split_seed`` and the first ``val_fraction``
of them are the validation split, the rest training: the same split on every run and rank.
An image without a mask is an error; a mask without an image is reported as a warning.

Start-up check (``check_files``, see :mod:`iseg.data.file_check`): when the source is built, every
image of both splits is checked (its header by default, ``'decode'`` decodes it in full) and every
mask must have its image's size; all problems of the folder are reported in one error naming the
files. With ``skip_bad_samples=True`` the split's bad samples are left out instead and listed (a
warning, and ``skipped``). A few masks are also decoded: when none of them has an object but some have
``ignore_value`` pixels, the masks most likely mark objects with 255 (0/255 binary masks), which
this rule reads as "ignore": that is an error saying to set ``ignore_value=None``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from iseg.data.eval.base import read_image
from iseg.data.eval.layout import pair_by_stem, read_name_list
from iseg.data.file_check import SampleFiles, check_mode, find_problems, report_problems
from iseg.data.image_io import read_label_map
from iseg.data.sample import InstanceSample
from iseg.data.source import SampleSource
from iseg.data.training_layout import require_training_layout

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "all")
_OTHER = {"train": "val", "val": "train"}
MASK_MODES = ("instances", "binary")


class FolderSource(SampleSource):
    """Images and label-map masks matched by stem (see the module docstring).

    Args:
        root: dataset folder.
        split: 'train', 'val' or 'all' (every image, ignoring split files).
        mask_mode: 'instances' (each value one instance) or 'binary' (all values one object).
        ignore_value: mask value that is "don't care" (None: none).
        val_fraction: share of the images in 'val' when there are no split files.
        split_seed: shuffles the images before that split.
        images_dir, masks_dir: sub-folder names.
        check_files: start-up check of the folder's files: 'header', 'decode' or 'off'.
        skip_bad_samples: leave samples with unusable files out (listed in a warning and in
            ``skipped``) instead of raising.
    """

    #: How many masks the start-up check decodes to find 0/255 masks read with 255 = ignore.
    SPOT_CHECKED_MASKS = 8

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        mask_mode: str = "instances",
        ignore_value: int | None = 255,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        images_dir: str = "images",
        masks_dir: str = "masks",
        check_files: str = "header",
        skip_bad_samples: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"folder dataset split must be one of {list(SPLITS)}, got {split!r}")
        if mask_mode not in MASK_MODES:
            raise ValueError(f"folder dataset mask_mode must be one of {list(MASK_MODES)}, got {mask_mode!r}")
        if ignore_value is not None and (isinstance(ignore_value, bool) or not isinstance(ignore_value, int) or ignore_value <= 0):
            raise ValueError(f"folder dataset ignore_value must be a positive integer or None, got {ignore_value!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"folder dataset val_fraction must be in [0, 1), got {val_fraction}")
        self.root = Path(root).expanduser()
        self.split, self.mask_mode, self.ignore_value = split, mask_mode, ignore_value
        self.skip_bad_samples = skip_bad_samples
        self._unreadable: set[int] = set()  # indices found unreadable after the start-up check
        require_training_layout(
            "folder",
            self.root,
            [
                (f"{images_dir}/", "images, any extension"),
                (f"{masks_dir}/", "one label-map PNG per image, same stem: 0 bg, k instance k, 255 ignore"),
                ("train.txt, val.txt", "optional image stems per split (else a seeded val_fraction split)"),
            ],
            [images_dir, masks_dir],
        )
        entries, orphans = pair_by_stem("folder dataset", self.root / images_dir, self.root / masks_dir)
        if orphans:
            log.warning(
                "folder dataset %s: %d mask(s) without an image are not used: %s",
                self.root, len(orphans), ", ".join(name for name, _ in orphans[:5]) + (" ..." if len(orphans) > 5 else ""),
            )
        by_stem = {entry.image_path.stem: entry for entry in entries}
        stems = self._split_stems(sorted(by_stem), val_fraction, split_seed, split)
        self.entries = [by_stem[stem] for stem in stems]
        # both splits are checked, so that one error lists every bad file of the training run
        checked = stems
        if split != "all":
            try:
                other = self._split_stems(sorted(by_stem), val_fraction, split_seed, _OTHER[split])
            except (ValueError, FileNotFoundError):
                other = []  # that split's own source reports it
            checked = sorted(set(stems) | set(other))
        problems = find_problems(
            [SampleFiles(stem, by_stem[stem].image_path, by_stem[stem].mask_path) for stem in checked],
            check_mode(check_files, "folder dataset"),
        )
        owner, option = f"folder dataset {self.root}", "data.train_dataset.source.skip_bad_samples=true"
        if not skip_bad_samples:
            report_problems(problems, len(checked), check_files, False, owner, option)
        own = set(stems)
        self.skipped = report_problems(
            [(name, reason) for name, reason in problems if name in own], len(stems), check_files, True,
            f"{owner} ({split} split)", option,
        )
        if self.skipped:
            bad = {name for name, _ in self.skipped}
            self.entries = [e for e in self.entries if e.image_path.stem not in bad]
            if not self.entries:
                raise ValueError(f"folder dataset {self.root}: every sample of the {split} split has unusable files")
        if check_files != "off":
            self._spot_check_objects()

    def _spot_check_objects(self) -> None:
        """Error when a few masks spread over the split have ignore pixels but not one object."""
        if self.ignore_value is None:
            return
        count = min(self.SPOT_CHECKED_MASKS, len(self.entries))
        picks = sorted({round(i * (len(self.entries) - 1) / max(count - 1, 1)) for i in range(count)})
        with_ignore = 0
        for index in picks:
            values = np.unique(read_label_map(self.entries[index].mask_path))
            if any(v != 0 and v != self.ignore_value for v in values):
                return
            with_ignore += int(self.ignore_value in values)
        if with_ignore:
            raise ValueError(
                f"folder dataset {self.root}: {with_ignore} of {len(picks)} masks checked hold only 0 and "
                f"{self.ignore_value}, and {self.ignore_value} means 'ignore' (ignore_value={self.ignore_value}), "
                f"so they have no object. For 0/{self.ignore_value} binary masks set "
                "data.train_dataset.source.ignore_value=null"
            )

    def _split_stems(self, stems: list[str], val_fraction: float, split_seed: int, split: str) -> list[str]:
        if split == "all":
            return stems
        split_file = self.root / f"{split}.txt"
        other_file = self.root / f"{_OTHER[split]}.txt"
        if split_file.is_file():
            listed, known = read_name_list(split_file), set(stems)
            unknown = [name for name in listed if name not in known]
            if unknown:
                raise FileNotFoundError(
                    f"folder dataset: {len(unknown)} name(s) of {split_file} have no image+mask pair in "
                    f"{self.root} (e.g. {unknown[:5]}); list image file stems, one per line"
                )
            return listed
        if other_file.is_file():
            raise FileNotFoundError(
                f"folder dataset: {other_file} exists but {split_file} does not; give both split files or neither"
            )
        order = np.random.default_rng(split_seed).permutation(len(stems))
        num_val = math.ceil(val_fraction * len(stems))
        chosen = order[:num_val] if split == "val" else order[num_val:]
        if len(chosen) == 0:
            raise ValueError(
                f"folder dataset {self.root}: the {split} split is empty ({len(stems)} images, "
                f"val_fraction={val_fraction}); add images, change val_fraction, or write train.txt/val.txt"
            )
        return [stems[i] for i in sorted(chosen)]

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def names(self) -> list[str]:
        return [entry.image_path.stem for entry in self.entries]

    def label_map(self, index: int) -> np.ndarray:
        """The mask of sample ``index`` as a label map (binary mode: 1 object, ignore kept)."""
        if not 0 <= index < len(self.entries):
            raise IndexError(f"folder {self.split} index {index} out of range [0, {len(self.entries)})")
        labels = read_label_map(self.entries[index].mask_path)
        if self.mask_mode == "binary":
            ignore = labels == self.ignore_value if self.ignore_value is not None else None
            labels = (labels != 0).astype(labels.dtype)
            if ignore is not None and ignore.any():
                labels[ignore] = self.ignore_value
        return labels

    def get_sample(self, index: int, rng: np.random.Generator | None = None) -> InstanceSample:
        """Sample ``index``; a file that passed the start-up check but cannot be read now (e.g. a JPEG
        damaged past its header) is an error naming it, or with ``skip_bad_samples`` a warning and
        the next readable sample."""
        if not 0 <= index < len(self.entries):
            raise IndexError(f"folder {self.split} index {index} out of range [0, {len(self.entries)})")
        for step in range(len(self.entries)):
            current = (index + step) % len(self.entries)
            if current in self._unreadable:
                continue
            try:
                return self._read_sample(current)
            except ValueError as error:
                if not self.skip_bad_samples:
                    raise ValueError(
                        f"{error} (found while training: check_files=decode decodes every image at start-up, "
                        "skip_bad_samples=true skips such samples)"
                    ) from None
                self._unreadable.add(current)
                log.warning("folder dataset %s: skipping sample %s, unreadable: %s", self.root,
                            self.entries[current].image_path.stem, error)
        raise ValueError(f"folder dataset {self.root}: no sample of the {self.split} split can be read")

    def _read_sample(self, index: int) -> InstanceSample:
        labels = self.label_map(index)
        entry = self.entries[index]
        image = read_image(entry.image_path)
        if labels.shape != image.shape[:2]:
            raise ValueError(
                f"folder dataset: mask {entry.mask_path} is {labels.shape[0]}x{labels.shape[1]} but image "
                f"{entry.image_path} is {image.shape[0]}x{image.shape[1]}"
            )
        ignore = [self.ignore_value] if self.ignore_value is not None else []
        return InstanceSample.from_label_map(image, labels, ignore_values=ignore, name=entry.image_path.stem)

    def sample_object_ids(self, index: int) -> list[int]:
        values = np.unique(self.label_map(index))
        return list(range(sum(1 for v in values if v != 0 and v != self.ignore_value)))
