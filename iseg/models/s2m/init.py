"""S2M's training initialisation from VainF's DeepLabV3+ ResNet-50 (reference §1.1, ``load_deeplab``).

VainF/DeepLabV3Plus-Pytorch checkpoints (``best_deeplabv3plus_resnet50_voc_os16.pth`` etc.) hold the
network under ``model_state`` with the same module names as S2M's network, but a 3-channel
``backbone.conv1`` and a 21- (VOC) or 19-class (Cityscapes) classifier. As the reference does, every
tensor whose shape differs is adapted: a bias becomes zeros of S2M's shape, the final classifier
weight is initialised orthogonally, and ``backbone.conv1.weight`` keeps its three RGB input channels
and gains three orthogonally initialised ones (previous mask, positive, negative scribbles; not
zeros). The random draws use torch's global generator (seeded by the training run).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from iseg.models.checkpoints import (
    CheckpointError,
    load_state_dict_strict,
    read_checkpoint,
)

CONV1 = "backbone.conv1.weight"


def deeplab_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The network tensors of a VainF checkpoint (``model_state``, any ``module.`` prefix removed)."""
    state = obj.get("model_state") if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping):
        found = f"keys {sorted(obj)[:8]}" if isinstance(obj, Mapping) else f"a {type(obj).__name__}"
        raise CheckpointError(f"{source}: not a VainF DeepLabV3+ checkpoint (no 'model_state' dict; found {found})")
    return {key.removeprefix("module."): value for key, value in state.items()}


@torch.no_grad()
def adapt_deeplab_state(state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` reshaped to the ``target`` state dict's shapes by the reference's rules (module docstring)."""
    adapted = dict(state)
    for key, expected in target.items():
        value = state.get(key)
        if value is None or value.shape == expected.shape:
            continue
        if key == CONV1 and value.shape[0] == expected.shape[0] and value.shape[2:] == expected.shape[2:]:
            extra = torch.empty(expected.shape[0], expected.shape[1] - value.shape[1], *expected.shape[2:])
            nn.init.orthogonal_(extra)
            adapted[key] = torch.cat((value.to(extra.dtype), extra), dim=1)
        elif key.endswith("bias"):
            adapted[key] = torch.zeros(expected.shape, dtype=value.dtype)
        elif key.endswith("weight") and value.dim() == expected.dim():
            fresh = torch.empty(expected.shape, dtype=value.dtype)
            adapted[key] = nn.init.orthogonal_(fresh)
        else:
            raise CheckpointError(f"{key}: cannot adapt shape {tuple(value.shape)} to {tuple(expected.shape)}")
    return adapted


def load_deeplab_init(net: nn.Module, path: str | Path) -> None:
    """Initialise an S2M network from VainF's DeepLabV3+ ResNet-50 checkpoint at ``path`` (strict keys)."""
    state = deeplab_state_dict(read_checkpoint(path), str(path))
    try:
        load_state_dict_strict(net, adapt_deeplab_state(state, net.state_dict()))
    except CheckpointError as error:
        raise CheckpointError(f"{path} (VainF DeepLabV3+ initialisation): {error}") from error
