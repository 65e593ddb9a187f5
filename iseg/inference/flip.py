"""Horizontal-flip test-time augmentation: the network sees the input and its mirror in one batch.

The two outputs are averaged as *logits*, before the sigmoid (RITM, f-BRS, FCFI), which is not
the same as averaging probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from iseg.interaction.clicks import Click


def add_flipped(image: torch.Tensor, clicks: Sequence[Click]) -> tuple[torch.Tensor, list[list[Click]]]:
    """(1, C, H, W) input -> the (2, C, H, W) batch [x, mirror(x)] and a click list for each.

    A click at column x is at W - 1 - x in the mirror (pixel centres; float columns allowed).
    """
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"flip expects one image (1, C, H, W), got {tuple(image.shape)}")
    width = image.shape[3]
    mirrored = [Click(c.y, width - c.x - 1, c.is_positive) for c in clicks]
    return torch.cat((image, torch.flip(image, dims=[3]))), [list(clicks), mirrored]


def average_flipped(logits: torch.Tensor) -> torch.Tensor:
    """(2B, 1, H, W) logits of [x, mirror(x)] -> (B, 1, H, W) mean, the mirrored half flipped back."""
    if logits.dim() != 4 or logits.shape[0] % 2:
        raise ValueError(f"expected logits (2B, C, H, W) of images and their mirrors, got {tuple(logits.shape)}")
    half = logits.shape[0] // 2
    return 0.5 * (logits[:half] + torch.flip(logits[half:], dims=[3]))
