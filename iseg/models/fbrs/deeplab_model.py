"""f-BRS's ``DistMapsModel`` (fbrs:isegm/model/is_deeplab_model.py) as a DeeplabModel subclass.

DeepLabV3+ on a dilated ResNet with the SepConv head (``head.layers.*``), as in RITM; f-BRS's
click fusion (``rgb_conv`` on tanh distance maps, R = 260, no previous mask). The learning-rate
split is DeeplabModel's: ``feature_extractor.backbone`` at ``backbone_lr_mult``, everything else at 1
(f-BRS: names containing "backbone" vs the rest).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from iseg.models.deeplab_model import DeeplabModel
from iseg.models.fbrs.fusion import NORM_RADIUS, fbrs_ismodel_kwargs, fbrs_rgb_conv


class FBRSDeeplabModel(DeeplabModel):
    """DeepLabV3+ ResNet-{34,50,101} with f-BRS's click fusion.

    Released variants (SBD): r34_dh128 (``backbone='resnet34', deeplab_ch=128, aspp_dropout=0.2``),
    r50_dh128 (``'resnet50', 128, 0.2``), r101_dh256 (``'resnet101', 256, 0.5``).

    forward(image (B, 3, H, W) RGB in [0, 1], points (B, 2N, 2+) rows (y, x[, order])) ->
    {'instances': logits (B, 1, H, W)}.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        deeplab_ch: int = 256,
        aspp_dropout: float = 0.5,
        norm_radius: float = NORM_RADIUS,
        backbone_norm_layer: type[nn.Module] | None = None,
        backbone_lr_mult: float = 0.1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        pretrained: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            backbone=backbone,
            deeplab_ch=deeplab_ch,
            aspp_dropout=aspp_dropout,
            backbone_norm_layer=backbone_norm_layer,
            backbone_lr_mult=backbone_lr_mult,
            norm_layer=norm_layer,
            pretrained=pretrained,
            norm_radius=norm_radius,
            **fbrs_ismodel_kwargs(type(self).__name__, kwargs),
        )
        # Same slot as ISModel's rgb_conv, so the key order stays the official one (rgb_conv first).
        self.rgb_conv = fbrs_rgb_conv(norm_layer)
