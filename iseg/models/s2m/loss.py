"""S2M's loss: bootstrapped cross-entropy on the aggregated two-class logits, with a warm-up.

Reference §1.3 (Scribble-to-Mask model/losses.py): per-pixel 2-class cross-entropy of the
aggregated [background, object] logits against ``gt > 0.5``. Before ``start_warm`` iterations it
is the plain mean; from then on it is the mean of the hardest fraction p of all pixels of the batch
(pooled, not per image), p falling linearly from 1 at ``start_warm`` to ``top_p`` at ``end_warm``.
Pixels labelled -1 (ignore) are left out of the mean and of the pool (the reference has none).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from iseg.inference.aggregation import aggregate_logits
from iseg.losses import LossTerm

IGNORE = -1


class BootstrappedCE(nn.Module):
    """``loss(logits (N, C, H, W), target long (N, H, W), it) -> (loss, p)``: the reference's schedule."""

    def __init__(self, start_warm: int = 10000, end_warm: int = 30000, top_p: float = 0.15):
        super().__init__()
        if not 0 <= start_warm < end_warm:
            raise ValueError(f"need 0 <= start_warm < end_warm, got {start_warm} and {end_warm}")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        self.start_warm = start_warm
        self.end_warm = end_warm
        self.top_p = top_p

    def fraction(self, it: int) -> float:
        """The share of hardest pixels averaged at iteration ``it`` (1.0 before the warm-up: the plain mean)."""
        if it < self.start_warm:
            return 1.0
        if it >= self.end_warm:
            return self.top_p
        return self.top_p + (1 - self.top_p) * (self.end_warm - it) / (self.end_warm - self.start_warm)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, it: int) -> tuple[torch.Tensor, float]:
        if logits.dim() != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
            raise ValueError(f"logits (N, C, H, W) and target (N, H, W) expected, got {tuple(logits.shape)} and {tuple(target.shape)}")
        per_pixel = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none").view(-1)
        valid = target.view(-1) != IGNORE
        if not bool(valid.all()):
            per_pixel = per_pixel[valid]
        if per_pixel.numel() == 0:
            return logits.sum() * 0.0, 1.0
        if it < self.start_warm:
            return per_pixel.mean(), 1.0
        p = self.fraction(it)
        k = max(1, int(per_pixel.numel() * p))
        return torch.topk(per_pixel, k, sorted=False).values.mean(), p


def s2m_class_target(gt: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) labels {-1, 0, 1} (or soft in [0, 1]) -> long (B, H, W): 1 where gt > 0.5, -1 kept."""
    gt = gt[:, 0] if gt.dim() == 4 else gt
    target = (gt > 0.5).long()
    return torch.where(gt == IGNORE, torch.full_like(target, IGNORE), target)


class S2MLossTerm(LossTerm):
    """The S2M loss table entry: aggregate ``sigmoid(object_logits)`` with the background and apply
    :class:`BootstrappedCE` at the training step (the reference's ``LossComputer``)."""

    def __init__(self, loss: BootstrappedCE | None = None, output: str = "object_logits", weight: float = 1.0):
        super().__init__(loss if loss is not None else BootstrappedCE(), output, weight)

    def forward(self, outputs: dict[str, torch.Tensor], gt: torch.Tensor, step: int = 0) -> torch.Tensor:
        logits = aggregate_logits(torch.sigmoid(self.prediction(outputs)))
        loss, _ = self.loss(logits, s2m_class_target(gt), step)
        return loss
