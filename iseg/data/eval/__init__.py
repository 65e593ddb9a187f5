"""Evaluation-set loaders (GrabCut, Berkeley, DAVIS, COCO_MVal, SBD, PascalVOC, own folders).

Each yields :class:`EvalSample` (name, RGB image, int8 GT with 1/0/-1) in the reference order,
one per object instance, decoding files on access; see :func:`build_evaluation_dataset`.
"""

from iseg.data.eval.base import EvalEntry, EvalSample, EvaluationSet, Exclusion
from iseg.data.eval.davis import CocoMValDataset, DavisDataset
from iseg.data.eval.folder import FolderDataset
from iseg.data.eval.grabcut import BerkeleyDataset, GrabCutDataset
from iseg.data.eval.instance_cache import default_cache_dir
from iseg.data.eval.layout import DatasetLayoutError
from iseg.data.eval.pascalvoc import PascalVOCDataset
from iseg.data.eval.registry import EVALUATION_SETS, build_evaluation_dataset
from iseg.data.eval.sbd import SBDEvaluationDataset

__all__ = [
    "EVALUATION_SETS",
    "BerkeleyDataset",
    "CocoMValDataset",
    "DatasetLayoutError",
    "DavisDataset",
    "EvalEntry",
    "EvalSample",
    "EvaluationSet",
    "Exclusion",
    "FolderDataset",
    "GrabCutDataset",
    "PascalVOCDataset",
    "SBDEvaluationDataset",
    "build_evaluation_dataset",
    "default_cache_dir",
]
