"""Small layers shared by the RITM-lineage networks."""

from __future__ import annotations

import torch
from torch import nn


class ScaleLayer(nn.Module):
    """Multiplies by |scale * lr_mult|; RITM's "coord feature normalisation" (init 0.05)."""

    def __init__(self, init_value: float = 1.0, lr_mult: float = 1.0):
        super().__init__()
        self.lr_mult = lr_mult
        self.scale = nn.Parameter(torch.full((1,), init_value / lr_mult, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.abs(self.scale * self.lr_mult)


class ImageNormalize(nn.Module):
    """(image - mean) / std with ImageNet statistics; buffers are non-persistent so the
    state dict keeps the official keys (the reference normaliser is not a module)."""

    def __init__(self, mean: tuple[float, ...] = (0.485, 0.456, 0.406), std: tuple[float, ...] = (0.229, 0.224, 0.225)):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return (image - self.mean) / self.std
