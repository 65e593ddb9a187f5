"""Evaluation sets by name, so that configs and the CLI can say ``name: davis, root: ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iseg.data.eval.base import EvaluationSet
from iseg.data.eval.davis import CocoMValDataset, DavisDataset
from iseg.data.eval.folder import FolderDataset
from iseg.data.eval.grabcut import BerkeleyDataset, GrabCutDataset
from iseg.data.eval.pascalvoc import PascalVOCDataset
from iseg.data.eval.sbd import SBDEvaluationDataset

EVALUATION_SETS: dict[str, type[EvaluationSet]] = {
    "grabcut": GrabCutDataset,
    "berkeley": BerkeleyDataset,
    "davis": DavisDataset,
    "coco_mval": CocoMValDataset,
    "sbd": SBDEvaluationDataset,
    "pascalvoc": PascalVOCDataset,
    "folder": FolderDataset,
}


def build_evaluation_dataset(name: str, root: str | Path, **options: Any) -> EvaluationSet:
    """The evaluation set ``name`` (case-insensitive) at ``root``; ``options`` go to its constructor."""
    key = name.lower()
    if key not in EVALUATION_SETS:
        raise ValueError(f"unknown evaluation set {name!r}; known: {', '.join(EVALUATION_SETS)}")
    cls = EVALUATION_SETS[key]
    try:
        return cls(root, **options)
    except TypeError as exc:
        if "argument" not in str(exc):
            raise
        raise TypeError(f"evaluation set {key!r} ({cls.__name__}): bad options {sorted(options)}: {exc}") from None
