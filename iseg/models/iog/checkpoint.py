"""The official IOG checkpoints: a bare state dict of the network (``torch.save(net.state_dict())``).

The refinement network's file has ``iog_points.*`` tensors besides the main network's. Files
written by PyTorch 0.4.0 lack the BatchNorm ``num_batches_tracked`` counters; they are filled
with zeros (they do not change eval-mode outputs). Everything else loads strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from iseg.models.checkpoints import (
    CheckpointError,
    describe_architecture,
    load_state_dict_strict,
)


def fill_num_batches_tracked(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state_dict`` with a zero counter for every BatchNorm of ``model`` whose statistics it holds."""
    filled = dict(state_dict)
    for key, value in model.state_dict().items():
        stem = key[: -len("num_batches_tracked")]
        if key.endswith("num_batches_tracked") and key not in filled and f"{stem}running_mean" in filled:
            filled[key] = torch.zeros_like(value)
    return filled


class IogStateDictFormat:
    """``IOG_PASCAL_SBD.pth`` / ``IOG_PASCAL.pth`` (main network), ``IOG_PASCAL_SBD_REFINEMENT.pth``."""

    name = "iog"
    network_prefixes = ("Coarse_net.", "Fine_net.")

    def matches(self, obj: Any) -> bool:
        return (
            isinstance(obj, Mapping)
            and len(obj) > 0
            and all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in obj.items())
            and any(key.startswith(self.network_prefixes) for key in obj)
        )

    def build(self, obj: Any) -> nn.Module:
        from iseg.models.iog import IOGNetwork, IOGRefinementNetwork

        if "backbone.conv1.weight" not in obj:
            raise CheckpointError(
                f"no backbone.conv1.weight: not an IOG network; the file seems to hold [{describe_architecture(obj)}]"
            )
        in_channels = int(obj["backbone.conv1.weight"].shape[1])
        refinement = any(key.startswith("iog_points.") for key in obj)
        model = (IOGRefinementNetwork if refinement else IOGNetwork)(in_channels=in_channels)
        load_state_dict_strict(model, fill_num_batches_tracked(model, obj))
        return model
