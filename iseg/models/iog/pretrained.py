"""ImageNet initialisation of IOG's backbone: torchvision's ResNet-101 with conv1 widened 3 -> 5 channels.

The reference starts both networks from torchvision's ``resnet101`` weights and gives the two
guidance channels of ``conv1`` zero weights, so at the start the network sees the RGB image as
the ImageNet model does (on raw 0..255 values: the reference never normalises). The weights come
from a torchvision state-dict file, or from timm (``resnet101.tv_in1k``: the same torchvision
weights under the same names).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

TIMM_TORCHVISION_RESNET101 = "resnet101.tv_in1k"


def imagenet_resnet101_state_dict(source: str | Path) -> dict[str, torch.Tensor]:
    """A torchvision-layout ResNet-101 state dict: ``"timm"`` (downloads or reads the HF cache) or a file."""
    if str(source) == "timm":
        from iseg.models.init import create_timm_model

        return create_timm_model(TIMM_TORCHVISION_RESNET101, pretrained=True).state_dict()
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"ImageNet ResNet-101 weights {path} do not exist (give a torchvision resnet101 .pth or 'timm')")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    return dict(state)


def expand_input_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """conv1 weights (out, 3, k, k) -> (out, in_channels, k, k), the new channels zero."""
    if weight.shape[1] > in_channels:
        raise ValueError(f"conv1 has {weight.shape[1]} input channels, more than the {in_channels} wanted")
    extra = weight.new_zeros((weight.shape[0], in_channels - weight.shape[1], *weight.shape[2:]))
    return torch.cat((weight, extra), dim=1)


@torch.no_grad()
def load_imagenet_backbone_(backbone: nn.Module, source: str | Path) -> nn.Module:
    """Load ImageNet ResNet-101 weights into IOG's backbone (``fc`` dropped, conv1 widened with zeros)."""
    from iseg.models.checkpoints import CheckpointError, load_state_dict_strict
    from iseg.models.iog.checkpoint import fill_num_batches_tracked

    state = {k: v for k, v in imagenet_resnet101_state_dict(source).items() if not k.startswith("fc.")}
    if "conv1.weight" not in state:
        raise CheckpointError(f"{source}: no conv1.weight, not a torchvision-layout ResNet state dict")
    state["conv1.weight"] = expand_input_channels(state["conv1.weight"], backbone.conv1.in_channels)
    try:
        load_state_dict_strict(backbone, fill_num_batches_tracked(backbone, state))
    except CheckpointError as error:
        raise CheckpointError(f"{source}: {error}") from error
    return backbone
