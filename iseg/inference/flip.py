"""Horizontal-flip test-time augmentation: the network sees the input and its mirror in one batch.

The two outputs are averaged as *logits*, before the sigmoid (RITM, f-BRS, FCFI), which is not
the same as averaging probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from iseg.inference.views import Frame, View
from iseg.interaction.prompts import Prompt


def mirror_prompts(prompts: Sequence[Prompt], width: int) -> list[Prompt]:
    """Prompts in the mirrored image: column x is at W - 1 - x (pixel centres; floats allowed)."""
    return [prompt.map(lambda y, x: (y, width - x - 1)) for prompt in prompts]


def average_flipped(logits: torch.Tensor) -> torch.Tensor:
    """(2B, 1, H, W) logits of [x, mirror(x)] -> (B, 1, H, W) mean, the mirrored half flipped back."""
    if logits.dim() != 4 or logits.shape[0] % 2:
        raise ValueError(f"expected logits (2B, C, H, W) of images and their mirrors, got {tuple(logits.shape)}")
    half = logits.shape[0] // 2
    return 0.5 * (logits[:half] + torch.flip(logits[half:], dims=[3]))


class Flip(View):
    """Batch [x, mirror(x)] before the network; mean of the two logit maps after it."""

    output_space = "logits"

    def forward(self, frame: Frame) -> Frame:
        width = frame.image.shape[3]
        image = torch.cat((frame.image, torch.flip(frame.image, dims=[3])))
        prev = torch.cat((frame.prev, torch.flip(frame.prev, dims=[3])))
        mirrored = [mirror_prompts(prompts, width) for prompts in frame.prompts]
        if frame.mirrored:
            raise ValueError("the frame is mirrored already: use one Flip view")
        moved = frame.with_tensors(image, prev, [list(p) for p in frame.prompts] + mirrored)
        return replace(moved, mirrored=True)

    def inverse(self, output: torch.Tensor) -> torch.Tensor:
        return average_flipped(output)
