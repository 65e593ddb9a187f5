"""The encoder of Forte et al.: ResNet-50 with GroupNorm and weight standardisation, dilated to stride 8.

Key names follow the official checkpoint (``conv1``, ``bn1``, ``layer1.0.downsample.0``...), so its
``encoder.*`` tensors load unchanged. torchvision-style bottlenecks (stride on the 3x3). Dilation
as in the reference's ``ResnetDilated(dilate_scale=8)``: layer3's strided 3x3 becomes stride 1,
its other 3x3s dilation 2; layer4's first 3x3 dilation 2, the others 4; strided shortcuts stride 1.
"""

from __future__ import annotations

import torch
from torch import nn

from iseg.models.forte.layers import WSConv2d, group_norm


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = WSConv2d(in_ch, width, 1, bias=False)
        self.bn1 = group_norm(width)
        self.conv2 = WSConv2d(width, width, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = group_norm(width)
        self.conv3 = WSConv2d(width, width * self.expansion, 1, bias=False)
        self.bn3 = group_norm(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class DilatedResNet50GNWS(nn.Module):
    """ResNet-50 GN+WS at output stride 8; ``forward`` returns the features the decoder uses.

    Returns [input, conv1 out (64, 1/2), layer1 (256, 1/4), layer2 (512, 1/8), layer3 (1024, 1/8),
    layer4 (2048, 1/8)], as the reference's ``return_feature_maps=True``.
    """

    # (blocks, width, stride of the first block, dilation of the first 3x3, dilation of the others)
    LAYERS = ((3, 64, 1, 1, 1), (4, 128, 2, 1, 1), (6, 256, 1, 1, 2), (3, 512, 1, 2, 4))

    def __init__(self, in_channels: int = 9):
        super().__init__()
        self.conv1 = WSConv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = group_norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = 64
        for index, (blocks, width, stride, first_dilation, dilation) in enumerate(self.LAYERS, start=1):
            out_ch = width * Bottleneck.expansion
            downsample = None
            if stride != 1 or in_ch != out_ch:
                downsample = nn.Sequential(WSConv2d(in_ch, out_ch, 1, stride=stride, bias=False), group_norm(out_ch))
            layers = [Bottleneck(in_ch, width, stride, first_dilation, downsample)]
            layers += [Bottleneck(out_ch, width, 1, dilation) for _ in range(blocks - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*layers))
            in_ch = out_ch

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [x]
        x = self.relu(self.bn1(self.conv1(x)))
        features.append(x)
        x = self.maxpool(x)
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
            features.append(x)
        return features
