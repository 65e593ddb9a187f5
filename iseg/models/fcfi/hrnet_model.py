"""FCFI on HRNet+OCR: RITM's HRNetModel without the ReLU after the multi-branch fuses, with FFCM and
CFFM between the 4-branch aggregation (15w channels, stride 4) and the OCR head (spec §3.1).

Interface: see ``iseg.models.fcfi.feedback_model`` (``forward(image, points, new_points, gate,
is_training=None)``, inputs built by ``iseg.models.fcfi.inputs.FCFIInputs``). Constructor arguments are RITM HRNetModel's plus
FCFI's ``mid_ch``, ``update_num``, ``expansion_ratio`` and ``num_classes`` (only 1), with the
reference defaults, so FCFI's serialized config maps onto them 1:1. Both feedback outputs are
resized with align_corners=True. The previous mask is channel 0 of the click encoding (as in RITM).

Learning rates: the FFCM/CFFM parameters live under ``feature_extractor`` and get
``backbone_lr_mult`` like the rest of it except ``conv3x3_ocr``/``ocr_distri_head`` (the reference
applies its LRMult to all of ``feature_extractor``; spec §1.7), so HRNetModel.lr_multipliers covers them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from iseg.models.fcfi.cffm import CollaborativeFeedbackFusionModule
from iseg.models.fcfi.feedback_model import FeedbackModelMixin, feedback_outputs
from iseg.models.fcfi.ffcm import FocusedCorrectionModule
from iseg.models.hrnet_model import HRNetModel
from iseg.models.init import xavier_gluon_init_

IMAGE_CHANNELS = 3
FEEDBACK_CHANNELS = 1


class FCFIHRNetModel(FeedbackModelMixin, HRNetModel):
    """HRNet-W{width}(+OCR) with FCFI's feedback correction (FFCM) and fusion (CFFM) modules.

    The released "h18s" model is ``width=18, ocr_width=48, small=False, mid_ch=64,
    expansion_ratio=0.3`` (spec §3.1). Requires ``with_prev_mask=True``: the previous mask is the feedback.
    """

    def __init__(
        self,
        width: int = 48,
        ocr_width: int = 256,
        mid_ch: int = 32,
        update_num: int = 1,
        expansion_ratio: float = 2.0,
        small: bool = False,
        num_classes: int = 1,
        backbone_lr_mult: float = 0.1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        pretrained: bool = False,
        **kwargs: Any,
    ):
        if num_classes != 1:
            raise ValueError(f"FCFIHRNetModel segments one object: num_classes must be 1, got {num_classes}")
        if not kwargs.get("with_prev_mask", False):
            raise ValueError("FCFIHRNetModel needs with_prev_mask=True: the previous mask is FCFI's feedback input")
        super().__init__(
            width=width,
            ocr_width=ocr_width,
            small=small,
            backbone_lr_mult=backbone_lr_mult,
            norm_layer=norm_layer,
            pretrained=pretrained,
            **kwargs,
        )
        extractor = self.feature_extractor
        extractor.set_fuse_relu(False)
        channels = extractor.feature_channels
        aux_ch = IMAGE_CHANNELS + FEEDBACK_CHANNELS + self.coord_feature_ch
        # Registered after the OCR heads: the official key order.
        extractor.correction_module = xavier_gluon_init_(
            FocusedCorrectionModule(channels, mid_ch, aux_ch, norm_layer, expansion_ratio)
        )
        extractor.fusion_module = xavier_gluon_init_(
            CollaborativeFeedbackFusionModule(channels, mid_ch, update_num, norm_layer)
        )

    def feedback_backbone_forward(
        self,
        image: torch.Tensor,
        stem_features: torch.Tensor | None,
        click_maps: torch.Tensor,
        feedback: torch.Tensor,
        new_points: torch.Tensor,
        gate: float | torch.Tensor,
        soft_window: bool,
    ) -> dict[str, torch.Tensor]:
        extractor = self.feature_extractor
        feats = extractor.aggregate(extractor.stages(extractor.stem(image, stem_features)))
        feedback1, window = extractor.correction_module(image, click_maps, feats, feedback, new_points, soft_window)
        feats, feedback2 = extractor.fusion_module(feats, feedback1, gate)
        instances, instances_aux = extractor.head(feats)
        outputs = {"instances": instances, **feedback_outputs(feedback1, window, feedback2)}
        if self.with_aux_output:
            outputs["instances_aux"] = instances_aux
        return outputs
