"""What every evaluation set yields, and the lazy indexed container the layouts share.

A set is built from an *index* of entries (sample name, image file, mask file, object id) that is
cheap to keep in memory; files are decoded only when a sample is accessed. Objects whose ground
truth turns out empty are not evaluated (the reference would produce a 0/0 IoU): they are listed
in ``exclusions`` with the reason, so that an evaluation report can show them.

Every set checks its files when it is built (:meth:`EvaluationSet.check_files`, see
:mod:`iseg.data.file_check`): images by header (or a full decode), masks by the decoding the
set does anyway to find empty ones (or by header), mask size = image size. All problems come in
one error naming the files; with ``skip_bad_samples=True`` those samples become exclusions
("unusable files: ..."), listed in the table and in results.json like empty ones. A file that
passes the check and still fails to decode during the run stops the run with an error naming it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iseg.data.file_check import SampleFiles, check_mode, find_problems, report_problems
from iseg.data.image_io import decode_rgb
from iseg.interaction.next_click import validate_gt

Exclusion = tuple[str, str]


@dataclass(frozen=True)
class EvalSample:
    """One object to segment: ``image`` uint8 H×W×3 RGB, ``gt`` int8 H×W (1 object, 0, -1 ignore)."""

    name: str
    image: np.ndarray
    gt: np.ndarray


@dataclass(frozen=True)
class EvalEntry:
    """Where one sample's data lives; ``object_id`` selects the instance in multi-object masks."""

    name: str
    image_path: Path
    mask_path: Path
    object_id: int | None = None


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 image as the references read it (``cv2.imread`` colour, BGR -> RGB)."""
    image = decode_rgb(path)
    if image is None:
        raise ValueError(f"cannot read image {path}: missing, unreadable or not a format OpenCV decodes")
    return image


class EvaluationSet(Sequence[EvalSample], ABC):
    """Lazy, indexed evaluation set: ``len``, ``[i]`` (decodes files), iteration in reference order.

    Subclasses fill ``entries`` (and ``exclusions``) and say how a mask file becomes a GT through
    ``load_mask`` (file -> raw array, shared by the instances of one file) and ``to_gt``.
    """

    #: Human-readable dataset name used in messages.
    title: str = "evaluation set"
    #: Which raw mask values count as the object, for the empty-GT message.
    object_rule: str = "value 1"
    #: Whether mask files are images (their header gives their size; not so for SBD's ``.mat``).
    mask_is_image: bool = True
    #: The evaluate.py key of the set, for the skip option named in errors.
    config_key: str = "<set>"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.entries: list[EvalEntry] = []
        self.exclusions: list[Exclusion] = []
        self._mask_shapes: dict[Path, tuple[int, int]] = {}
        self._mask_errors: dict[Path, str] = {}
        self._dropped: list[EvalEntry] = []  # excluded at start-up (empty GT): their files are checked too

    @abstractmethod
    def load_mask(self, path: Path) -> np.ndarray:
        """The raw mask array of ``path`` (decoded once per file when several objects share it)."""

    @abstractmethod
    def to_gt(self, raw: np.ndarray, entry: EvalEntry) -> np.ndarray:
        """The int8 GT (1/0/-1) of ``entry`` from its file's raw mask."""

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> EvalSample:  # type: ignore[override]
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"{self.title} indices must be integers, got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.title} index {index} out of range for {len(self)} samples")
        entry = self.entries[int(index)]
        image = read_image(entry.image_path)
        gt = validate_gt(self.to_gt(self.load_mask(entry.mask_path), entry))
        if gt.shape != image.shape[:2]:
            raise ValueError(
                f"{self.title}: mask {entry.mask_path} is {gt.shape[0]}x{gt.shape[1]} (HxW) but image "
                f"{entry.image_path} is {image.shape[0]}x{image.shape[1]}"
            )
        if not (gt == 1).any():
            raise ValueError(
                f"{self.title}: sample {entry.name!r} has an empty ground truth ({entry.mask_path} has no "
                f"{self.object_rule}); the index was built without checking masks or from a stale cached list"
            )
        return EvalSample(entry.name, np.ascontiguousarray(image), np.ascontiguousarray(gt))

    def __iter__(self) -> Iterator[EvalSample]:
        return (self[i] for i in range(len(self)))

    @property
    def names(self) -> list[str]:
        """Sample names in order, without decoding anything."""
        return [entry.name for entry in self.entries]

    def pairs(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(image, gt) per sample: the input ``iseg.evaluation.protocol.evaluate_dataset`` takes."""
        return ((sample.image, sample.gt) for sample in self)

    def read_mask_once(self, path: Path) -> np.ndarray | None:
        """``load_mask(path)`` at start-up: its size is kept for :meth:`check_files`, a failure too
        (then None) so that all bad files are reported together."""
        if path in self._mask_errors:
            return None
        try:
            raw = self.load_mask(path)
        except (ValueError, OSError) as error:
            self._mask_errors[path] = str(error)
            return None
        self._mask_shapes[path] = (int(raw.shape[0]), int(raw.shape[1]))
        return raw

    def drop_empty(self, entries: Sequence[EvalEntry]) -> list[EvalEntry]:
        """Entries whose GT has an object pixel; the others go to ``exclusions`` with the reason.

        Each mask file is decoded once even when several entries (instances) share it; a mask
        that cannot be read is kept for :meth:`check_files` to report.
        """
        kept: list[EvalEntry] = []
        raw_path, raw = None, None
        for entry in entries:
            if entry.mask_path != raw_path:
                raw_path, raw = entry.mask_path, self.read_mask_once(entry.mask_path)
            if raw is None or (self.to_gt(raw, entry) == 1).any():
                kept.append(entry)
            else:
                self.exclusions.append((entry.name, self.empty_reason(raw, entry)))
                self._dropped.append(entry)
        return kept

    def empty_reason(self, raw: np.ndarray, entry: EvalEntry) -> str:
        """Why ``entry`` is excluded when its GT has no object pixel."""
        return f"empty ground truth: {entry.mask_path} has no {self.object_rule}"

    def check_files(self, entries: Sequence[EvalEntry], check: str = "header", skip_bad: bool = False) -> list[EvalEntry]:
        """``entries`` after the start-up check of their files (see the module docstring).

        Raises one :class:`~iseg.data.file_check.BadSamplesError` naming every unusable file
        (image unreadable, mask unreadable, sizes differ); with ``skip_bad`` those entries become
        exclusions instead and the rest is returned.
        """
        check_mode(check, f"{self.title} evaluation set")
        checked = sorted([*entries, *self._dropped], key=lambda e: (str(e.image_path), e.name))
        files = [
            SampleFiles(
                entry.name,
                entry.image_path,
                entry.mask_path if self.mask_is_image or entry.mask_path in self._mask_shapes else None,
                self._mask_shapes.get(entry.mask_path),
            )
            for entry in checked
        ]
        unread = {entry.name: self._mask_errors[entry.mask_path] for entry in checked if entry.mask_path in self._mask_errors}
        found = dict(find_problems([f for f in files if f.name not in unread], check))
        problems = [(e.name, unread.get(e.name) or found[e.name]) for e in checked if e.name in unread or e.name in found]
        report_problems(
            problems, len(checked), check, skip_bad,
            f"{self.title} evaluation set {self.root}", f"data.{self.config_key}.skip_bad_samples=true",
        )
        bad = {name: f"unusable files: {reason}" for name, reason in problems}
        new = dict(bad)
        self.exclusions = [(name, new.pop(name, reason)) for name, reason in self.exclusions]  # empty and bad: bad
        self.exclusions.extend(new.items())
        return [entry for entry in entries if entry.name not in bad]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, samples={len(self)}, exclusions={len(self.exclusions)})"
