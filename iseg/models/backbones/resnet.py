"""Dilated ResNet (output stride 8) on timm, with RITM's click-feature injection in the stem.

RITM/f-BRS/FCFI use GluonCV ResNetV1b: ``resnet34`` is v1b (7x7 stem), the deeper nets are v1s
(3-conv deep stem, 128 channels). timm's ``resnet34`` / ``resnet50s`` / ``resnet101s`` /
``resnet152s`` have the same layout, the same parameter names, and with ``output_stride=8``
the same dilations (layer3 dilation 2 with a dilation-1 first block, layer4 dilation 4 with a
dilation-2 first block), so the official ``feature_extractor.backbone.*`` tensors load 1:1.
Their ``gluon_in1k`` weights are the GluonCV ImageNet weights the papers start from.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from iseg.models.init import create_timm_model

# Reference backbone name -> timm model with the GluonCV ImageNet weights tag.
TIMM_RESNETS: dict[str, str] = {
    "resnet34": "resnet34.gluon_in1k",
    "resnet50": "resnet50s.gluon_in1k",
    "resnet101": "resnet101s.gluon_in1k",
    "resnet152": "resnet152s.gluon_in1k",
}

_PARTS = ("conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4")


def _timm_resnet(backbone: str, pretrained: bool, norm_layer: type[nn.Module]) -> nn.Module:
    if backbone not in TIMM_RESNETS:
        raise ValueError(f"unknown ResNet backbone {backbone!r}; expected one of {sorted(TIMM_RESNETS)}")
    return create_timm_model(
        TIMM_RESNETS[backbone], pretrained=pretrained, output_stride=8, num_classes=0, norm_layer=norm_layer
    )


class ResNetBackbone(nn.Module):
    """ResNet returning (c1, c2, c3, c4) at strides (4, 8, 8, 8).

    Only the stem, max-pool and the four stages of the timm model are kept (no pooling or
    classifier), so the state-dict keys are exactly the reference backbone's.
    """

    def __init__(
        self, backbone: str = "resnet50", norm_layer: type[nn.Module] = nn.BatchNorm2d, pretrained: bool = False
    ):
        super().__init__()
        net = _timm_resnet(backbone, pretrained, norm_layer)
        self.backbone_name = backbone
        self.norm_layer = norm_layer
        for name in _PARTS:
            setattr(self, name, getattr(net, name))
        self.stem_channels: int = self.bn1.num_features
        self.out_channels: tuple[int, ...] = tuple(info["num_chs"] for info in net.feature_info[1:])

    def forward(
        self, x: torch.Tensor, additional_features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (B, 3, H, W) normalised image; additional_features: (B, C <= stem width, H/2, W/2)
        click features, added after the first conv+BN+ReLU (zero-padded along channels)."""
        x = self.act1(self.bn1(self.conv1(x)))
        if additional_features is not None:
            x = x + self._pad_to_stem(additional_features, x)
        x = self.maxpool(x)
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c1, c2, c3, c4

    def _pad_to_stem(self, features: torch.Tensor, stem: torch.Tensor) -> torch.Tensor:
        extra = stem.shape[1] - features.shape[1]
        if extra < 0 or features.shape[0] != stem.shape[0] or features.shape[2:] != stem.shape[2:]:
            raise ValueError(
                f"additional_features of shape {tuple(features.shape)} cannot be added to the "
                f"{self.backbone_name} stem output of shape {tuple(stem.shape)}"
            )
        return F.pad(features, [0, 0, 0, 0, 0, extra])

    @torch.no_grad()
    def load_imagenet_weights(self) -> None:
        """Copy timm's GluonCV ImageNet weights into this backbone (needs the HF cache or network)."""
        source = _timm_resnet(self.backbone_name, True, self.norm_layer)
        self.load_state_dict(source.state_dict(), strict=True)
