"""FCFI's two small conv blocks; attribute names (``conv``, ``bn``, ``conv3x3``, ``conv1x1``) give
the official state-dict keys of the feedback modules."""

from __future__ import annotations

import torch
from torch import nn


class ConvBNReLU(nn.Module):
    """Conv (with bias) -> norm -> ReLU."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=kernel_size, stride=stride, padding=padding)
        self.bn = norm_layer(out_ch)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class XConvBNReLU(nn.Module):
    """Cheap 3x3: depthwise 3x3 conv (bias) -> pointwise 1x1 conv (bias) -> norm -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int, norm_layer: type[nn.Module] = nn.BatchNorm2d):
        super().__init__()
        if out_ch % in_ch:
            raise ValueError(f"XConvBNReLU needs out_ch to be a multiple of in_ch (depthwise), got {in_ch} -> {out_ch}")
        self.conv3x3 = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, groups=in_ch)
        self.conv1x1 = nn.Conv2d(out_ch, out_ch, kernel_size=1)
        self.bn = norm_layer(out_ch)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv1x1(self.conv3x3(x))))
