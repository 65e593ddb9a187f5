"""Losses for Forte et al.'s alpha output (no training code was released: these are our choice).

The network outputs a clamped alpha, not a logit, so a loss on the alpha gets no gradient where the
clamp saturates; :class:`MaskedL1Loss` on the unclamped output (``instances_raw``) keeps those
pixels learning. conf/model/forte_resnet50.yaml combines it with the L1 on the final alpha.
"""

from __future__ import annotations

import torch
from torch import nn


class MaskedL1Loss(nn.Module):
    """Per-sample mean |pred - label| over the pixels whose label is not ``ignore_label``.

    ``pred`` and ``label`` are (B, C, H, W); labels 1 (object) / 0 (background) / -1 (ignore).
    A sample without a valid pixel gets 0.
    """

    def __init__(self, ignore_label: int = -1):
        super().__init__()
        self.ignore_label = ignore_label

    def forward(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        if pred.dim() != 4 or label.numel() != pred.numel():
            raise ValueError(f"pred (B, C, H, W) and label must match, got {tuple(pred.shape)} and {tuple(label.shape)}")
        label = label.view(pred.shape).to(pred.dtype)
        valid = (label != self.ignore_label).to(pred.dtype)
        error = torch.abs(pred - label) * valid
        return error.sum(dim=(1, 2, 3)) / valid.sum(dim=(1, 2, 3)).clamp_min(1.0)
