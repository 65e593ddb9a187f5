"""S2M's soft aggregation: K independent object probabilities -> one distribution over background + K.

Reference §1.5 (Scribble-to-Mask model/aggregate.py, MiVOS): the background probability is the
product over objects of (1 - p_k); background and objects are clamped to [1e-7, 1 - 1e-7], turned
into logits ln(q / (1 - q)) and normalised with a softmax over the K + 1 channels. MiVOS fuses its
interactive results with ``hard=True``, a softmax of 1000 x the logits (practically an arg-max).
Objects lie along dim 1 (the reference's ``aggregate_wbg_channel``).
"""

from __future__ import annotations

import torch

CLAMP = 1e-7
HARD_SCALE = 1000.0


def aggregate_logits(probs: torch.Tensor) -> torch.Tensor:
    """Per-object probabilities (B, K, H, W) -> logits (B, K + 1, H, W), channel 0 = background."""
    if probs.dim() != 4 or probs.shape[1] < 1:
        raise ValueError(f"probabilities must have shape (B, K >= 1, H, W), got {tuple(probs.shape)}")
    background = torch.prod(1 - probs, dim=1, keepdim=True)
    joint = torch.cat((background, probs), dim=1).clamp(CLAMP, 1 - CLAMP)
    return torch.log(joint / (1 - joint))


def aggregate(probs: torch.Tensor, keep_bg: bool = True, hard: bool = False) -> torch.Tensor:
    """Per-object probabilities (B, K, H, W) -> aggregated probabilities (B, K + 1, H, W) with the
    background as channel 0 (``keep_bg``), else (B, K, H, W). ``hard``: MiVOS's 1000x sharpening."""
    logits = aggregate_logits(probs)
    out = torch.softmax(logits * HARD_SCALE if hard else logits, dim=1)
    return out if keep_bg else out[:, 1:]


def single_object_logit(z: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) logit z -> the logit whose sigmoid is the one-object aggregated foreground
    probability: l_fg - l_bg of :func:`aggregate_logits` (2z inside the clamp, +-2 ln((1-1e-7)/1e-7) outside)."""
    if z.dim() != 4 or z.shape[1] != 1:
        raise ValueError(f"z must have shape (B, 1, H, W), got {tuple(z.shape)}")
    logits = aggregate_logits(torch.sigmoid(z))
    return logits[:, 1:] - logits[:, :1]
