"""f-BRS's ``DistMapsHRNetModel`` (fbrs:isegm/model/is_hrnet_model.py) as an HRNetModel subclass.

The HRNet + OCR feature extractor is RITM's (same keys, same forward); what differs is the click
fusion (f-BRS ``rgb_conv`` on tanh distance maps, R = 260, no previous mask) and the learning-rate
split: f-BRS trains ``rgb_conv``, ``aux_head``, ``cls_head``, ``conv3x3_ocr`` and
``ocr_distri_head`` at the full rate and the rest of the HRNet at ``backbone_lr_mult`` (spec §1.7;
RITM keeps aux_head/cls_head at the backbone rate).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from iseg.models.fbrs.fusion import NORM_RADIUS, fbrs_ismodel_kwargs, fbrs_rgb_conv
from iseg.models.hrnet_model import HRNetModel

# feature_extractor children trained at the full learning rate (f-BRS "non-backbone" keywords).
_FULL_LR_HEADS = ("aux_head", "cls_head", "conv3x3_ocr", "ocr_distri_head")


class FBRSHRNetModel(HRNetModel):
    """HRNet-W{width} + OCR-{ocr_width} with f-BRS's click fusion.

    Released variants (SBD): ``width=18, ocr_width=64`` (hrnet18_ocr64_sbd.pth) and ``width=32,
    ocr_width=128`` (hrnet32_ocr128_sbd.pth). Training builds it ``with_aux_output=True`` (aux BCE
    loss); the released files are evaluated without the aux output.

    forward(image (B, 3, H, W) RGB in [0, 1], points (B, 2N, 2+) rows (y, x[, order])) ->
    {'instances': logits (B, 1, H, W)[, 'instances_aux']}.
    """

    def __init__(
        self,
        width: int = 48,
        ocr_width: int = 256,
        small: bool = False,
        norm_radius: float = NORM_RADIUS,
        with_aux_output: bool = False,
        backbone_lr_mult: float = 0.1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        pretrained: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            width=width,
            ocr_width=ocr_width,
            small=small,
            backbone_lr_mult=backbone_lr_mult,
            norm_layer=norm_layer,
            pretrained=pretrained,
            norm_radius=norm_radius,
            with_aux_output=with_aux_output,
            **fbrs_ismodel_kwargs(type(self).__name__, kwargs),
        )
        # Same slot as ISModel's rgb_conv, so the key order stays the official one (rgb_conv first).
        self.rgb_conv = fbrs_rgb_conv(norm_layer)

    def lr_multipliers(self) -> dict[str, float]:
        """rgb_conv and the OCR/aux/cls heads at 1, the rest of the HRNet at ``backbone_lr_mult``."""
        multipliers = {}
        for name, _ in self.named_parameters():
            parts = name.split(".")
            if parts[0] == "feature_extractor" and parts[1] not in _FULL_LR_HEADS:
                multipliers[name] = float(self.backbone_lr_mult)
            else:
                multipliers[name] = 1.0
        return multipliers
