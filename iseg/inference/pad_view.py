"""Pad the frame to a multiple of a stride, as S2M's demo does before its network (reference §1.4).

The reference pads the normalised image with zeros, split floor / ceil between top and bottom (left
and right); in the predictor's [0, 1] image space that is the normalisation mean. The previous map
is padded with zeros, prompts move by the top-left offset, and the output is cropped back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from iseg.inference.views import Frame, View


def pad_amounts(size: int, multiple: int) -> tuple[int, int]:
    """(before, after) padding that brings ``size`` to a multiple of ``multiple`` (floor before, ceil after)."""
    total = -size % multiple
    return total // 2, total - total // 2


class PadToMultiple(View):
    """Pad image, previous map and prompts to a multiple of ``multiple`` px; crop the output back.

    Args:
        multiple: the stride the network's input size must divide by (S2M: 16).
        image_fill: per-channel fill of the [0, 1] image (S2M: the ImageNet mean, i.e. 0 after
            normalisation, as the reference pads).
    """

    def __init__(self, multiple: int = 16, image_fill: Sequence[float] = (0.485, 0.456, 0.406)):
        if multiple < 1:
            raise ValueError(f"multiple must be >= 1, got {multiple}")
        self.multiple = int(multiple)
        self.image_fill = tuple(float(v) for v in image_fill)
        self._crop: tuple[int, int, int, int] | None = None

    def forward(self, frame: Frame) -> Frame:
        height, width = frame.image.shape[-2:]
        top, bottom = pad_amounts(height, self.multiple)
        left, right = pad_amounts(width, self.multiple)
        self._crop = (top, top + height, left, left + width)
        if top == bottom == left == right == 0:
            return frame
        pad = (left, right, top, bottom)
        if len(self.image_fill) != frame.image.shape[1]:
            raise ValueError(f"image_fill has {len(self.image_fill)} values for a {frame.image.shape[1]}-channel image")
        image = torch.cat(
            [F.pad(frame.image[:, c : c + 1], pad, value=fill) for c, fill in enumerate(self.image_fill)], dim=1
        )
        prompts = [[p.map(lambda y, x: (y + top, x + left)) for p in prompts] for prompts in frame.prompts]
        return frame.with_tensors(image, F.pad(frame.prev, pad), prompts)

    def inverse(self, output: torch.Tensor) -> torch.Tensor:
        if self._crop is None:
            raise RuntimeError("PadToMultiple.inverse before forward")
        y0, y1, x0, x1 = self._crop
        return output[..., y0:y1, x0:x1]

    def reset(self) -> None:
        self._crop = None
