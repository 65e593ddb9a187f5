"""Object-Contextual Representation (OCR) blocks as RITM's HRNet+OCR head uses them.

Module and attribute names follow the reference so that the state-dict keys of an official
checkpoint (``ocr_distri_head.object_context_block.f_pixel.1.0.weight`` ...) load 1:1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn_relu(in_channels: int, out_channels: int, norm_layer: type[nn.Module]) -> list[nn.Module]:
    """1x1 conv (no bias) followed by a nested (norm, ReLU) pair: keys ``i`` and ``i+1.0``."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
        nn.Sequential(norm_layer(out_channels), nn.ReLU(inplace=True)),
    ]


class SpatialGather(nn.Module):
    """Soft object regions -> one context vector per class.

    Softmax of the class logits over all spatial positions, then the feature average weighted by
    it: (B, C, H, W) features and (B, K, H, W) logits give (B, C, K, 1). No parameters.
    """

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale

    def forward(self, feats: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        batch, num_classes = probs.shape[:2]
        probs = F.softmax(self.scale * probs.reshape(batch, num_classes, -1), dim=2)
        feats = feats.reshape(batch, feats.shape[1], -1).permute(0, 2, 1)
        return torch.matmul(probs, feats).permute(0, 2, 1).unsqueeze(3)


class ObjectAttentionBlock(nn.Module):
    """Pixel-to-object attention: every pixel reads the object context vectors it resembles.

    With a single class the softmax runs over one element, so the attention weight is exactly 1
    and the output is ``f_up(f_down(object))`` at every pixel; ``f_pixel``/``f_object`` are still
    computed (their BatchNorm statistics move during training, as in the reference).
    """

    def __init__(self, in_channels: int, key_channels: int, norm_layer: type[nn.Module] = nn.BatchNorm2d):
        super().__init__()
        self.key_channels = key_channels
        self.f_pixel = nn.Sequential(
            *_conv_bn_relu(in_channels, key_channels, norm_layer),
            *_conv_bn_relu(key_channels, key_channels, norm_layer),
        )
        self.f_object = nn.Sequential(
            *_conv_bn_relu(in_channels, key_channels, norm_layer),
            *_conv_bn_relu(key_channels, key_channels, norm_layer),
        )
        self.f_down = nn.Sequential(*_conv_bn_relu(in_channels, key_channels, norm_layer))
        self.f_up = nn.Sequential(*_conv_bn_relu(key_channels, in_channels, norm_layer))

    def forward(self, x: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        query = self.f_pixel(x).reshape(batch, self.key_channels, -1).permute(0, 2, 1)
        key = self.f_object(proxy).reshape(batch, self.key_channels, -1)
        value = self.f_down(proxy).reshape(batch, self.key_channels, -1).permute(0, 2, 1)
        sim_map = F.softmax(self.key_channels**-0.5 * torch.matmul(query, key), dim=-1)
        context = torch.matmul(sim_map, value).permute(0, 2, 1).reshape(batch, self.key_channels, height, width)
        return self.f_up(context)


class SpatialOCR(nn.Module):
    """Augments each pixel's features with its object context: conv(cat(context, feats))."""

    def __init__(
        self,
        in_channels: int,
        key_channels: int,
        out_channels: int,
        dropout: float = 0.05,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ):
        super().__init__()
        self.object_context_block = ObjectAttentionBlock(in_channels, key_channels, norm_layer)
        self.conv_bn_dropout = nn.Sequential(
            nn.Conv2d(2 * in_channels, out_channels, kernel_size=1, bias=False),
            nn.Sequential(norm_layer(out_channels), nn.ReLU(inplace=True)),
            nn.Dropout2d(dropout),
        )

    def forward(self, feats: torch.Tensor, proxy_feats: torch.Tensor) -> torch.Tensor:
        context = self.object_context_block(feats, proxy_feats)
        return self.conv_bn_dropout(torch.cat([context, feats], dim=1))
