"""DeepLabV3+ decoder as RITM/f-BRS/FCFI build it, plus the separable-conv blocks it is made of.

Module and attribute names (``aspp.concurent``, ``gap``, ``skip_project.skip_project``,
``head.block``, ``body``, ``layers``) reproduce the official state-dict keys, so released
checkpoints load without renaming. Every resize is bilinear with ``align_corners=True``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from iseg.models.backbones.resnet import ResNetBackbone

ASPP_RATES = (12, 24, 36)
SKIP_CHANNELS = 32


def _conv_bn_relu(
    in_ch: int, out_ch: int, norm_layer: type[nn.Module], kernel_size: int = 1, dilation: int = 1
) -> list[nn.Module]:
    padding = dilation * (kernel_size // 2)
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=padding, dilation=dilation, bias=False)
    return [conv, norm_layer(out_ch), nn.ReLU()]


class SeparableConv2d(nn.Module):
    """Depthwise 3x3 (no bias) -> pointwise 1x1 (no bias) -> norm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, norm_layer: type[nn.Module] = nn.BatchNorm2d):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, kernel_size=3, padding=1, groups=in_channels, bias=False),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            norm_layer(out_channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SepConvHead(nn.Module):
    """``num_layers`` separable convs (in -> mid -> ... -> mid) then a biased 1x1 conv to the outputs."""

    def __init__(
        self,
        num_outputs: int,
        in_channels: int,
        mid_channels: int,
        num_layers: int = 1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"SepConvHead needs num_layers >= 1, got {num_layers}")
        blocks: list[nn.Module] = [
            SeparableConv2d(in_channels if i == 0 else mid_channels, mid_channels, norm_layer)
            for i in range(num_layers)
        ]
        blocks.append(nn.Conv2d(mid_channels, num_outputs, kernel_size=1))
        self.layers = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class AsppPooling(nn.Module):
    """Image-level branch of ASPP: global average -> 1x1 conv+BN+ReLU -> broadcast back by resizing."""

    def __init__(self, in_channels: int, out_channels: int, norm_layer: type[nn.Module]):
        super().__init__()
        self.gap = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), *_conv_bn_relu(in_channels, out_channels, norm_layer))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.gap(x), size=x.shape[2:], mode="bilinear", align_corners=True)


class ASPP(nn.Module):
    """1x1 branch, three atrous 3x3 branches and image pooling, concatenated and projected to ``out_channels``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        atrous_rates: Sequence[int] = ASPP_RATES,
        project_dropout: float = 0.5,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ):
        super().__init__()
        if len(atrous_rates) != 3:
            raise ValueError(f"ASPP takes three atrous rates, got {tuple(atrous_rates)}")
        if not 0.0 <= project_dropout < 1.0:
            raise ValueError(f"project_dropout must be in [0, 1), got {project_dropout}")
        branches: list[nn.Module] = [nn.Sequential(*_conv_bn_relu(in_channels, out_channels, norm_layer))]
        branches += [
            nn.Sequential(*_conv_bn_relu(in_channels, out_channels, norm_layer, kernel_size=3, dilation=rate))
            for rate in atrous_rates
        ]
        branches.append(AsppPooling(in_channels, out_channels, norm_layer))
        self.concurent = nn.ModuleList(branches)  # official spelling, kept for the checkpoint keys
        project = _conv_bn_relu(5 * out_channels, out_channels, norm_layer)
        if project_dropout > 0:
            project.append(nn.Dropout(project_dropout))
        self.project = nn.Sequential(*project)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.concurent], dim=1))


class SkipProject(nn.Module):
    """Reduces the stride-4 backbone features to 32 channels before they join the decoder."""

    def __init__(
        self, in_channels: int, out_channels: int = SKIP_CHANNELS, norm_layer: type[nn.Module] = nn.BatchNorm2d
    ):
        super().__init__()
        self.skip_project = nn.Sequential(*_conv_bn_relu(in_channels, out_channels, norm_layer))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip_project(x)


class DeepLabHead(nn.Module):
    """Decoder on [ASPP, skip]: two separable convs then a biased 1x1 conv."""

    def __init__(
        self, out_channels: int, in_channels: int, mid_channels: int, norm_layer: type[nn.Module] = nn.BatchNorm2d
    ):
        super().__init__()
        self.block = nn.Sequential(
            SeparableConv2d(in_channels, mid_channels, norm_layer),
            SeparableConv2d(mid_channels, mid_channels, norm_layer),
            nn.Conv2d(mid_channels, out_channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DeepLabV3Plus(nn.Module):
    """ResNet (OS 8) -> ASPP on c4, upsampled to c1 and joined with the projected c1 -> decoder.

    Returns ``ch``-channel features at stride 4.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        ch: int = 256,
        project_dropout: float = 0.5,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        backbone_norm_layer: type[nn.Module] | None = None,
    ):
        super().__init__()
        if ch <= 0:
            raise ValueError(f"DeepLab channel width must be positive, got ch={ch}")
        self.backbone = ResNetBackbone(backbone, norm_layer=backbone_norm_layer or norm_layer)
        c1_channels, c4_channels = self.backbone.out_channels[0], self.backbone.out_channels[-1]
        # Registration order follows the official state dicts: backbone, head, skip_project, aspp.
        self.head = DeepLabHead(ch, ch + SKIP_CHANNELS, ch, norm_layer)
        self.skip_project = SkipProject(c1_channels, SKIP_CHANNELS, norm_layer)
        self.aspp = ASPP(c4_channels, ch, ASPP_RATES, project_dropout, norm_layer)

    def forward(self, x: torch.Tensor, additional_features: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, 3, H, W) normalised image; additional_features: stride-2 click features or None."""
        return self.decode(*self.context_and_skip(x, additional_features))

    def context_and_skip(
        self, x: torch.Tensor, additional_features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ASPP output resized to stride 4, and the projected stride-4 skip features (FCFI acts in between)."""
        c1, _, _, c4 = self.backbone(x, additional_features)
        skip = self.skip_project(c1)
        context = F.interpolate(self.aspp(c4), size=skip.shape[2:], mode="bilinear", align_corners=True)
        return context, skip

    def decode(self, context: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Decoder head on [context, skip]: ``ch`` channels at stride 4."""
        return self.head(torch.cat((context, skip), dim=1))
