"""IOG's loss (s2m_iog_forte.md §2.5): binary cross-entropy summed over pixels, void masked, batch-averaged.

The reference (networks/loss.py ``class_cross_entropy_loss`` with ``size_average=False,
batch_average=True``) thresholds soft labels at 0.5 (0.5 counts as object), drops pixels whose
void map is > 0.5, sums the numerically stable per-pixel BCE and divides by the batch size; there
is no class balancing. Here labels are iseg's (1 object, 0 background, -1 void), so
:class:`IOGCrossEntropy` returns the per-sample sums and :class:`~iseg.losses.LossTerm`'s batch
mean is the reference's batch average. The main network adds the five maps (coarse1..4, fine) with
weight 1; the refinement branch weights its rounds with :func:`refinement_round_loss` and
:func:`refinement_loss`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def bce_per_pixel(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """max(x, 0) - x * y + log(1 + exp(-|x|)) with y = 1[label >= 0.5]."""
    target = (label >= 0.5).to(logits.dtype)
    return F.relu(logits) - logits * target + torch.log1p(torch.exp(-logits.abs()))


def iog_cross_entropy(
    logits: torch.Tensor,
    label: torch.Tensor,
    void: torch.Tensor | None = None,
    size_average: bool = False,
    batch_average: bool = True,
) -> torch.Tensor:
    """The reference's ``class_cross_entropy_loss`` on soft labels and a soft void map (counted where <= 0.5)."""
    if logits.shape != label.shape:
        raise ValueError(f"logits of shape {tuple(logits.shape)} for labels of shape {tuple(label.shape)}")
    loss = bce_per_pixel(logits, label)
    if void is not None:
        loss = loss * (void <= 0.5).to(loss.dtype)
    total = loss.sum()
    if size_average:
        return total / logits.numel()
    if batch_average:
        return total / logits.shape[0]
    return total


class IOGCrossEntropy(nn.Module):
    """Per-sample sum of the BCE over non-void pixels: logits (B, 1, H, W), gt (B, 1, H, W) in {-1, 0, 1} -> (B,)."""

    def __init__(self, ignore_label: int = -1):
        super().__init__()
        self.ignore_label = ignore_label

    def forward(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        if pred.dim() != 4 or label.numel() != pred.numel():
            raise ValueError(f"predictions (B, 1, H, W) and labels of the same size expected, got {tuple(pred.shape)} and {tuple(label.shape)}")
        label = label.view(pred.shape).to(pred.dtype)
        valid = (label != self.ignore_label).to(pred.dtype)
        return (bce_per_pixel(pred, label) * valid).sum(dim=(1, 2, 3))


def refinement_round_loss(map_losses: Sequence[torch.Tensor], coarse4_twice: bool = True) -> torch.Tensor:
    """One round: c1 + c2 + c3 + c4 + fine, with c4 counted twice as the reference does (``coarse4_twice``)."""
    if len(map_losses) != 5:
        raise ValueError(f"expected the losses of 5 maps (coarse1..4, fine), got {len(map_losses)}")
    c1, c2, c3, c4, fine = map_losses
    return c1 + c2 + c3 + (2 if coarse4_twice else 1) * c4 + fine


def refinement_loss(round_losses: Sequence[torch.Tensor], iou0: float, iou_threshold: float = 0.95) -> torch.Tensor:
    """L_0 when round 0's batch-mean IoU reaches ``iou_threshold``, else 0.5 L_0 + 0.5 L_1."""
    if len(round_losses) < 2 and iou0 < iou_threshold:
        raise ValueError(f"round 0's IoU {iou0:.3f} < {iou_threshold}: the loss needs round 1 too")
    return round_losses[0] if iou0 >= iou_threshold else 0.5 * round_losses[0] + 0.5 * round_losses[1]
