"""Weight initialisation and ImageNet weights for the backbones.

The paper recipes initialise every conv/linear with RITM's XavierGluon (gaussian, magnitude 2),
BatchNorm to identity, then load ImageNet weights into the backbone through timm.
"""

from __future__ import annotations

import math

import timm
import torch
from torch import nn


@torch.no_grad()
def xavier_gluon_init_(module: nn.Module, magnitude: float = 2.0) -> nn.Module:
    """Conv/linear weights ~ N(0, sqrt(magnitude / ((fan_in + fan_out) / 2))), biases 0, norms identity."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
            std = math.sqrt(magnitude / ((fan_in + fan_out) / 2.0))
            m.weight.normal_(0.0, std)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.SyncBatchNorm, nn.LayerNorm)):
            if m.weight is not None:
                m.weight.fill_(1.0)
            if m.bias is not None:
                m.bias.zero_()
    return module


class PretrainedWeightsUnavailable(RuntimeError):
    """ImageNet weights could not be obtained (offline machine, no cache)."""


def create_timm_model(name: str, pretrained: bool, **kwargs) -> nn.Module:
    """timm.create_model with an error that says how to proceed when the weights cannot be fetched."""
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except Exception as error:  # hub/network errors come in many types
        if not pretrained:
            raise
        raise PretrainedWeightsUnavailable(
            f"could not load ImageNet weights for timm model '{name}' ({type(error).__name__}: {error}). "
            "This machine may be offline: put the weights in the Hugging Face cache (HF_HOME) or "
            "train from scratch with model.net.pretrained=false"
        ) from error


def lr_multiplier_groups(
    named_parameters: dict[str, nn.Parameter], multipliers: dict[str, float], base_lr: float
) -> list[dict]:
    """Optimizer param groups, one per distinct multiplier (same update as RITM's one group per parameter)."""
    missing = [name for name in named_parameters if name not in multipliers]
    if missing:
        raise KeyError(f"no learning-rate multiplier for parameters {missing[:5]}{'...' if len(missing) > 5 else ''}")
    groups: dict[float, list[nn.Parameter]] = {}
    for name, param in named_parameters.items():
        if param.requires_grad:
            groups.setdefault(multipliers[name], []).append(param)
    return [{"params": params, "lr": base_lr * mult, "lr_mult": mult} for mult, params in sorted(groups.items())]
