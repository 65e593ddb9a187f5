"""FCFI on DeepLabV3+: FFCM and CFFM act on the ASPP output after it is resized to stride 4 and
before it joins the skip features in the decoder (spec §3.1).

Interface: see ``iseg.models.fcfi.feedback_model`` (``forward(image, points, new_points, gate,
is_training=None)``, inputs built by ``iseg.models.fcfi.inputs.FCFIInputs``). Constructor arguments are RITM DeeplabModel's plus
FCFI's ``mid_ch``, ``update_num``, ``expansion_ratio`` with the reference defaults, so FCFI's
serialized config maps onto them 1:1.

Differences from the HRNet variant, all as in the reference: the click encoding holds only the
[positive, negative] maps (the previous mask reaches the network only as FFCM/CFFM feedback, so
Conv1S takes 2 maps), the CFFM module is called ``feedback_fusion``, and ``updated_feedback1`` is
resized to the input with align_corners=False. Learning rates: only the ResNet backbone gets
``backbone_lr_mult``; FFCM/CFFM train at the full rate (spec §1.7), as DeeplabModel.lr_multipliers gives.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from iseg.models.deeplab_model import DeeplabModel
from iseg.models.fcfi.cffm import CollaborativeFeedbackFusionModule
from iseg.models.fcfi.feedback_model import FeedbackModelMixin, feedback_outputs
from iseg.models.fcfi.ffcm import FocusedCorrectionModule
from iseg.models.init import xavier_gluon_init_

IMAGE_CHANNELS = 3
FEEDBACK_CHANNELS = 1


class FCFIDeeplabModel(FeedbackModelMixin, DeeplabModel):
    """DeepLabV3+ / dilated ResNet with FCFI's FFCM and CFFM on the decoder context.

    The released model is ``backbone='resnet101', deeplab_ch=256, aspp_dropout=0.2, mid_ch=32,
    expansion_ratio=0.3``. Requires ``with_prev_mask=True``: the previous mask is the feedback.
    """

    output_align_corners = {**FeedbackModelMixin.output_align_corners, "updated_feedback1": False}

    def __init__(
        self,
        backbone: str = "resnet50",
        deeplab_ch: int = 256,
        mid_ch: int = 64,
        aspp_dropout: float = 0.5,
        update_num: int = 1,
        expansion_ratio: float = 2.0,
        backbone_norm_layer: type[nn.Module] | None = None,
        backbone_lr_mult: float = 0.1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        pretrained: bool = False,
        **kwargs: Any,
    ):
        if not kwargs.pop("with_prev_mask", False):
            raise ValueError("FCFIDeeplabModel needs with_prev_mask=True: the previous mask is FCFI's feedback input")
        # Built without the prev-mask click channel (2-map Conv1S), then told to split the 4th input channel.
        super().__init__(
            backbone=backbone,
            deeplab_ch=deeplab_ch,
            aspp_dropout=aspp_dropout,
            backbone_norm_layer=backbone_norm_layer,
            backbone_lr_mult=backbone_lr_mult,
            norm_layer=norm_layer,
            pretrained=pretrained,
            with_prev_mask=False,
            **kwargs,
        )
        self.with_prev_mask = True
        aux_ch = IMAGE_CHANNELS + self.coord_feature_ch + FEEDBACK_CHANNELS
        extractor = self.feature_extractor
        # Registered after aspp: the official key order.
        extractor.correction_module = xavier_gluon_init_(
            FocusedCorrectionModule(deeplab_ch, mid_ch, aux_ch, norm_layer, expansion_ratio)
        )
        extractor.feedback_fusion = xavier_gluon_init_(
            CollaborativeFeedbackFusionModule(deeplab_ch, mid_ch, update_num, norm_layer)
        )

    def get_coord_features(
        self, image: torch.Tensor, prev_mask: torch.Tensor | None, points: torch.Tensor
    ) -> torch.Tensor:
        """[positive map, negative map] only: FCFI's DeepLab does not encode the previous mask with the clicks."""
        return self.dist_maps(image, points)

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
        context, skip = extractor.context_and_skip(image, stem_features)
        feedback1, window = extractor.correction_module(image, click_maps, context, feedback, new_points, soft_window)
        context, feedback2 = extractor.feedback_fusion(context, feedback1, gate)
        instances = self.head(extractor.decode(context, skip))
        return {"instances": instances, **feedback_outputs(feedback1, window, feedback2)}
