"""RITM's DeeplabModel: ISModel click fusion on a DeepLabV3+ / dilated ResNet, with a SepConv head.

Constructor arguments mirror the reference class (plus ``pretrained``) so that the serialized
config of an official checkpoint maps onto them 1:1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from iseg.models.backbones.deeplab_v3 import DeepLabV3Plus, SepConvHead
from iseg.models.init import xavier_gluon_init_
from iseg.models.is_model import ISModel

_BACKBONE_PREFIX = "feature_extractor.backbone."


class DeeplabModel(ISModel):
    """Interactive segmentation on DeepLabV3+; returns stride-4 logits that ISModel upsamples.

    Released variants: r34_dh128 (``backbone='resnet34', deeplab_ch=128, aspp_dropout=0.2``),
    r50_dh128, r101_dh256. A fresh model is XavierGluon-initialised; with ``pretrained=True``
    the backbone then receives the GluonCV ImageNet weights (through timm), as in the papers.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        deeplab_ch: int = 256,
        aspp_dropout: float = 0.5,
        backbone_norm_layer: type[nn.Module] | None = None,
        backbone_lr_mult: float = 0.1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        pretrained: bool = False,
        **kwargs: Any,
    ):
        if kwargs.get("with_aux_output", False):
            raise ValueError("DeeplabModel has no auxiliary head: with_aux_output=True is not supported")
        if deeplab_ch < 2 or deeplab_ch % 2:
            raise ValueError(
                f"deeplab_ch must be an even positive width (the head uses deeplab_ch // 2), got {deeplab_ch}"
            )
        if backbone_lr_mult < 0:
            raise ValueError(f"backbone_lr_mult must be >= 0, got {backbone_lr_mult}")
        super().__init__(norm_layer=norm_layer, **kwargs)
        self.backbone_lr_mult = backbone_lr_mult
        self.feature_extractor = DeepLabV3Plus(
            backbone=backbone,
            ch=deeplab_ch,
            project_dropout=aspp_dropout,
            norm_layer=norm_layer,
            backbone_norm_layer=backbone_norm_layer,
        )
        self.head = SepConvHead(
            1, in_channels=deeplab_ch, mid_channels=deeplab_ch // 2, num_layers=2, norm_layer=norm_layer
        )
        xavier_gluon_init_(self)
        if pretrained:
            self.feature_extractor.backbone.load_imagenet_weights()

    def backbone_forward(
        self, image: torch.Tensor, coord_features: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """image: normalised (B, 3, H, W); coord_features: (B, 64, H/2, W/2) or None.

        Returns {'instances': (B, 1, H/4, W/4) logits}.
        """
        return {"instances": self.head(self.feature_extractor(image, coord_features))}

    def feature_refinement(
        self, inputs: dict[str, Any], mode: str
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """f-BRS on DeepLabV3+ (reference §4): A after c4 (the rest: ASPP, decoder, head), B after the
        ASPP + skip concatenation (decoder, head), C after the decoder (the head only)."""
        if mode not in ("A", "B", "C"):
            raise ValueError(f"f-BRS mode must be 'A', 'B' or 'C', got {mode!r}")
        extractor = self.feature_extractor
        with torch.no_grad():
            fused = self.fuse_clicks(**inputs)
            c1, _, _, c4 = extractor.backbone(fused.backbone_input, fused.stem_features)
            skip = extractor.skip_project(c1)
            if mode == "A":
                features = c4
            else:
                context = F.interpolate(extractor.aspp(c4), size=skip.shape[2:], mode="bilinear", align_corners=True)
                features = torch.cat((context, skip), dim=1)
                if mode == "C":
                    features = extractor.head(features)
        size = fused.image.shape[2:]

        def rest(x: torch.Tensor) -> torch.Tensor:
            if mode == "A":
                context = F.interpolate(extractor.aspp(x), size=skip.shape[2:], mode="bilinear", align_corners=True)
                x = extractor.decode(context, skip)
            elif mode == "B":
                x = extractor.head(x)
            return self.resize_outputs({"instances": self.head(x)}, size)["instances"]

        return features, rest

    def lr_multipliers(self) -> dict[str, float]:
        """Backbone at ``backbone_lr_mult``; ASPP, skip, heads and click fusion at 1 (Conv1E at its own 0.1)."""
        maps_mult = float(getattr(self.maps_transform, "lr_mult", 1.0))
        multipliers = {}
        for name, _ in self.named_parameters():
            if name.startswith(_BACKBONE_PREFIX):
                multipliers[name] = float(self.backbone_lr_mult)
            elif name.startswith("maps_transform."):
                multipliers[name] = maps_mult
            else:
                multipliers[name] = 1.0
        return multipliers
