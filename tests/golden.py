"""Golden-fixture helpers: fill rule v1 weights and stand-in official checkpoints.

The fixtures (copied from ../shared/golden) list every tensor of a released checkpoint; the
weights are regenerated from the tensor names (../shared/golden/README.md, "fill rule v1"), so a
checkpoint built here has the released file's keys, shapes and container layout.
"""

from __future__ import annotations

import copy
import json
import math
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

GOLDEN_MODELS = Path(__file__).resolve().parent / "fixtures" / "golden" / "models"


def load_spec(variant: str) -> dict[str, Any]:
    """spec.json of a golden model variant."""
    return json.loads((GOLDEN_MODELS / variant / "spec.json").read_text())


def load_io(variant: str) -> dict[str, np.ndarray]:
    """Reference inputs/outputs (io.npz) of a golden model variant."""
    with np.load(GOLDEN_MODELS / variant / "io.npz") as data:
        return {key: data[key] for key in data.files}


def fill_rule_tensor(name: str, shape: list[int], dtype: str) -> torch.Tensor:
    """Fill rule v1: a tensor determined by its name through a crc32-seeded legacy RandomState."""
    if not dtype.startswith("float"):
        return torch.zeros(shape, dtype=getattr(torch, dtype))
    rs = np.random.RandomState(zlib.crc32(name.encode("utf-8")))
    if name.endswith("running_var"):
        values = rs.uniform(0.5, 1.5, size=shape)
    elif name.endswith("running_mean"):
        values = rs.standard_normal(shape) * 0.1
    elif len(shape) <= 1:
        values = rs.standard_normal(shape) * 0.1 + (1.0 if name.endswith("weight") else 0.0)
    else:
        values = rs.standard_normal(shape) / math.sqrt(math.prod(shape[1:]))
    return torch.from_numpy(np.asarray(values, dtype=np.dtype(dtype)))


def fill_rule_state_dict(spec: dict[str, Any]) -> OrderedDict[str, torch.Tensor]:
    """The stand-in state dict of a spec, in the spec's (= the official file's) key order."""
    return OrderedDict((name, fill_rule_tensor(name, shape, dtype)) for name, shape, dtype, *_ in spec["tensors"])


def official_config(spec: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's ``config`` as the reference pickles it (norm_mean_std is a tuple of lists)."""
    config = copy.deepcopy(spec["official_checkpoint"]["config"])
    norm = config["params"].get("norm_mean_std")
    if norm is not None:
        norm["value"] = tuple(norm["value"])
    return config


def make_official_checkpoint(spec: dict[str, Any], path: Path) -> Path:
    """torch.save the stand-in for the released checkpoint: ``{'state_dict', 'config'}``."""
    torch.save({"state_dict": fill_rule_state_dict(spec), "config": official_config(spec)}, path)
    return path
