"""CFFM, FCFI's Collaborative Feedback Fusion Module (reference spec §3.4).

The corrected feedback and the backbone features are fused into a new feedback map (a sigmoid
output), and a one-channel residual predicted from [features, fused feedback] is added to every
feature channel. ``gate`` switches the residual off when there is no previous prediction to
learn from (0.0 on the first click, 1.0 afterwards).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from iseg.models.fcfi.blocks import ConvBNReLU, XConvBNReLU


class CollaborativeFeedbackFusionModule(nn.Module):
    """features (B,C,h,w) + feedback (B,1,h',w') -> (updated features, fused feedback (B,1,h,w))."""

    def __init__(self, in_ch: int, mid_ch: int, update_num: int = 1, norm_layer: type[nn.Module] = nn.BatchNorm2d):
        super().__init__()
        if update_num < 1:
            raise ValueError(f"update_num must be >= 1, got {update_num}")
        self.update_num = update_num
        self.feature_conv = ConvBNReLU(in_ch, mid_ch, kernel_size=1, padding=0, norm_layer=norm_layer)
        self.fusion_encoder = nn.Sequential(
            ConvBNReLU(1 + mid_ch, mid_ch, norm_layer=norm_layer),
            XConvBNReLU(mid_ch, mid_ch, norm_layer),
            XConvBNReLU(mid_ch, mid_ch, norm_layer),
            nn.Conv2d(mid_ch, 1, kernel_size=3, padding=1),
            nn.Sigmoid(),
        )
        # One output channel: the same non-negative residual is added to all feature channels.
        self.residual_predictor = ConvBNReLU(in_ch + 1, 1, kernel_size=1, padding=0, norm_layer=norm_layer)

    def forward(
        self, features: torch.Tensor, feedback: torch.Tensor, gate: float | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        feedback = F.interpolate(feedback, size=features.shape[2:], mode="bilinear", align_corners=True)
        fused = feedback
        for _ in range(self.update_num):  # every pass starts again from the corrected feedback
            fused = self.fusion_encoder(torch.cat((feedback, self.feature_conv(features)), dim=1))
            residual = self.residual_predictor(torch.cat((features, fused), dim=1))
            features = features + gate * residual
        return features, fused
