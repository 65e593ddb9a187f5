"""IOG's main network (s2m_iog_forte.md §2.1): ResNet-101 (output stride 16) + PSP + CoarseNet + FineNet.

Input: (B, 5, H, W) = raw RGB in [0, 255] (no normalisation) and the two guidance heatmaps in
[0, 255] (inside point, outside corners); H and W multiples of 16 (512 x 512 in the reference).
Output: logits of the four coarse maps and the fine map, each resized to ``output_size`` (the
reference's fixed 512 x 512, whatever the input size); the fine map is the prediction.

Module names follow the official checkpoints (``backbone``, ``psp4``, ``Coarse_net``, ``Fine_net``)
so that ``IOG_PASCAL_SBD.pth`` / ``IOG_PASCAL.pth`` load 1:1. ``Coarse_net.upsamples.0`` is in the
checkpoints but never used (kept, as in the reference). All norms are plain BatchNorm2d.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

COARSE_SIZE = (128, 128)
OUTPUT_NAMES = ("coarse1", "coarse2", "coarse3", "coarse4")


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


# ------------------------------------------------------------------------------------ backbone


class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck (stride on the 3x3 conv) with a dilation."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ResNet101OS16(nn.Module):
    """ResNet-101 at output stride 16: layer4 a multi-grid unit (dilations 2, 4, 8, stride 1).

    Returns (layer1, layer2, layer3, layer4) at strides 4, 8, 16, 16. Parameter names are
    torchvision's (without ``fc``), so ImageNet weights load by name.
    """

    def __init__(self, in_channels: int = 5, blocks: Sequence[int] = (3, 4, 23, 3), multi_grid: Sequence[int] = (1, 2, 4)):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, [1] * blocks[0], stride=1)
        self.layer2 = self._make_layer(128, [1] * blocks[1], stride=2)
        self.layer3 = self._make_layer(256, [1] * blocks[2], stride=2)
        self.layer4 = self._make_layer(512, [2 * g for g in multi_grid], stride=1)

    def _make_layer(self, planes: int, dilations: Sequence[int], stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
            )
        layers = [Bottleneck(self.inplanes, planes, stride, dilations[0], downsample)]
        self.inplanes = planes * 4
        layers.extend(Bottleneck(self.inplanes, planes, 1, d) for d in dilations[1:])
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        return c1, c2, c3, self.layer4(c3)


# ----------------------------------------------------------------------------------- heads


class PSPModule(nn.Module):
    """Pyramid pooling (1, 2, 3, 6): stages of in/4 channels, concatenated with the input -> ``out_channels``."""

    def __init__(self, in_channels: int = 2048, out_channels: int = 512, sizes: Sequence[int] = (1, 2, 3, 6)):
        super().__init__()
        stage_channels = in_channels // len(sizes)
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(size),
                nn.Conv2d(in_channels, stage_channels, 1, bias=False),
                nn.BatchNorm2d(stage_channels),
                nn.ReLU(inplace=True),
            )
            for size in sizes
        )
        self.bottleneck = nn.Sequential(
            nn.Conv2d(in_channels + stage_channels * len(sizes), out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.relu = nn.ReLU()

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        size = feats.shape[2:]
        priors = [_resize(stage(feats), size) for stage in self.stages] + [feats]
        return self.relu(self.bottleneck(torch.cat(priors, 1)))


class CoarseNet(nn.Module):
    """GlobalNet of CPN on [psp, layer3, layer2, layer1]: lateral 1x1 convs to 256, top-down sums,
    one coarse logit map per level (128 x 128, after a BatchNorm(1))."""

    def __init__(self, channel_settings: Sequence[int] = (512, 1024, 512, 256), output_size: Sequence[int] = COARSE_SIZE):
        super().__init__()
        self.output_size = tuple(output_size)
        self.laterals = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, 256, 1, bias=False), nn.BatchNorm2d(256), nn.ReLU(inplace=True))
            for c in channel_settings
        )
        # upsamples.0 is unused, as in the reference (its weights are in the checkpoints)
        self.upsamples = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                nn.Conv2d(256, 256, 1, bias=False),
                nn.BatchNorm2d(256),
            )
            for _ in channel_settings[:-1]
        )
        self.predict = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(256, 256, 1, bias=False),
                nn.BatchNorm2d(256),
                nn.ReLU(inplace=True),
                nn.Conv2d(256, 1, 3, padding=1, bias=False),
                nn.Upsample(size=self.output_size, mode="bilinear", align_corners=True),
                nn.BatchNorm2d(1),
            )
            for _ in channel_settings
        )

    def forward(self, feats: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        fms, outs = [], []
        up = None
        for i, x in enumerate(feats):
            feature = self.laterals[i](x) if up is None else self.laterals[i](x) + up
            fms.append(feature)
            if i < len(feats) - 1:
                up = feature if i == 0 else self.upsamples[i](feature)
            outs.append(self.predict[i](feature))
        return fms, outs


class RefineBottleneck(nn.Module):
    """CPN's RefineNet bottleneck: 1x1 -> 3x3 -> 1x1 (x2 channels) with an always-present 1x1 shortcut."""

    def __init__(self, inplanes: int, planes: int = 128):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 2)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 2, 1, bias=False), nn.BatchNorm2d(planes * 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


class FineNet(nn.Module):
    """RefineNet of CPN: 3, 2, 1, 0 bottlenecks on the four CoarseNet features, resized to 128 x 128,
    concatenated, one more bottleneck and a 3x3 conv + BatchNorm(1) -> the fine logit map."""

    def __init__(self, num_levels: int = 4, output_size: Sequence[int] = COARSE_SIZE):
        super().__init__()
        self.output_size = tuple(output_size)
        self.cascade = nn.ModuleList(
            nn.Sequential(
                *[RefineBottleneck(256) for _ in range(num_levels - 1 - i)],
                nn.Upsample(size=self.output_size, mode="bilinear", align_corners=True),
            )
            for i in range(num_levels)
        )
        self.final_predict = nn.Sequential(
            RefineBottleneck(256 * num_levels), nn.Conv2d(256, 1, 3, padding=1, bias=False), nn.BatchNorm2d(1)
        )

    def forward(self, fms: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.final_predict(torch.cat([layer(x) for layer, x in zip(self.cascade, fms)], 1))


# ---------------------------------------------------------------------------------- network


class IOGNetwork(nn.Module):
    """IOG: ``net(image)`` with image = (B, 5, H, W) -> {'instances': fine, 'coarse1'..'coarse4'} logits.

    Args:
        in_channels: 5 (RGB + inside + outside heatmaps).
        output_size: size of every returned map (the reference's fixed 512 x 512).
        backbone_lr_mult: learning-rate multiplier of the backbone (the reference: 0.1).
        pretrained: ImageNet backbone: False (the reference's random init), ``"timm"`` or the path of
            a torchvision resnet101 state dict (:func:`~iseg.models.iog.pretrained.load_imagenet_backbone_`).
    """

    psp_in_channels = 2048

    def __init__(
        self,
        in_channels: int = 5,
        output_size: Sequence[int] = (512, 512),
        backbone_lr_mult: float = 0.1,
        pretrained: bool | str = False,
    ):
        super().__init__()
        self.output_size = tuple(output_size)
        self.backbone_lr_mult = backbone_lr_mult
        self.backbone = ResNet101OS16(in_channels)
        self.psp4 = PSPModule(self.psp_in_channels, 512)
        self.Coarse_net = CoarseNet()
        self.Fine_net = FineNet()
        reference_init_(self)
        if pretrained:
            from iseg.models.iog.pretrained import load_imagenet_backbone_

            load_imagenet_backbone_(self.backbone, "timm" if pretrained is True else pretrained)

    def heads(self, features: Sequence[torch.Tensor], psp_input: torch.Tensor) -> list[torch.Tensor]:
        """[coarse1..coarse4, fine] logits at 128 x 128 from the backbone features and the PSP input."""
        c1, c2, c3, _ = features
        fms, coarse = self.Coarse_net([self.psp4(psp_input), c3, c2, c1])
        return [*coarse, self.Fine_net(fms)]

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(image)
        return self.named_outputs(self.heads(features, features[3]))

    def named_outputs(self, maps: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The five 128 x 128 maps resized to ``output_size``, by name (the fine one is ``instances``)."""
        outputs = {name: _resize(m, self.output_size) for name, m in zip(OUTPUT_NAMES, maps[:4])}
        outputs["instances"] = _resize(maps[4], self.output_size)
        return outputs

    def default_inputs(self):
        from iseg.models.iog.inputs import IOGInputs

        return IOGInputs(size=self.output_size)

    def lr_multipliers(self) -> dict[str, float]:
        """Backbone x ``backbone_lr_mult`` (the reference: 1e-8 vs 1e-7 for the heads)."""
        return {
            name: self.backbone_lr_mult if name.startswith("backbone.") else 1.0 for name, _ in self.named_parameters()
        }


@torch.no_grad()
def reference_init_(module: nn.Module) -> nn.Module:
    """The reference's initialisation: convs ~ N(0, sqrt(2 / (k*k*out))), BatchNorm identity."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.normal_(0, (2.0 / fan_out) ** 0.5)
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.fill_(1.0)
            m.bias.zero_()
    return module
