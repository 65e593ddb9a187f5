"""IOG's crop around the box (s2m_iog_forte.md §2.3, §2.6) as a view of the shared predictor.

Forward: the box of the interaction's :class:`~iseg.interaction.prompts.InsideOutside` prompt,
enlarged by ``relax`` pixels on each side and NOT clipped (pixels outside the image are zeros), is
resized to ``size`` (512 x 512, aspect ratio not kept) with bilinear interpolation on pixel centres
(OpenCV's INTER_LINEAR); the prompts move with the same map. Inverse: the crop's probabilities are
resized back to the enlarged box with bicubic interpolation (OpenCV's INTER_CUBIC, the reference's
``crop2fullmask``) and pasted into an all-zero map of the image; the part outside the image is
dropped. The crop and paste are zoom-in's (:func:`~iseg.inference.zoom_in.crop_resize`,
:func:`~iseg.inference.zoom_in.paste_resized`).

``byte_scale`` reproduces the reference's evaluation: ``scipy.misc.imsave`` min-max scaled the
pasted map to bytes before the thresholds were applied (so thresholds act on a normalised map).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from iseg.inference.views import Frame, View
from iseg.inference.zoom_in import Box, crop_resize, paste_resized
from iseg.interaction.prompts import InsideOutside, Prompt


def relaxed_box(prompt: InsideOutside, relax: int) -> Box:
    """(rmin, rmax, cmin, cmax) inclusive: the prompt's box (rounded) enlarged by ``relax``, unclipped."""
    box = prompt.box
    return (round(box.y0) - relax, round(box.y1) + relax, round(box.x0) - relax, round(box.x1) + relax)


def byte_scaled(probs: torch.Tensor) -> torch.Tensor:
    """SciPy 1.1's ``bytescale`` of a map, divided by 255: uint8(clip((p - min) * 255 / (max - min)) + 0.5) / 255."""
    low, high = probs.min(), probs.max()
    span = high - low
    span = torch.where(span == 0, torch.ones_like(span), span)
    scaled = ((probs - low) * 255.0 / span).clamp(0, 255) + 0.5
    return scaled.to(torch.uint8).float() / 255.0


class BoxCrop(View):
    """Crop around the IOG box before the network; paste the probabilities back after it.

    Args:
        size: (h, w) of the network input (512 x 512).
        relax: pixels added on each side of the box (30).
        byte_scale: min-max byte scaling of the pasted map, as the reference's saved results.
    """

    output_space = "probs"

    def __init__(self, size: Sequence[int] = (512, 512), relax: int = 30, byte_scale: bool = False):
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be a positive (h, w) pair, got {size!r}")
        if relax < 0:
            raise ValueError(f"relax must be >= 0, got {relax}")
        self.size = (int(size[0]), int(size[1]))
        self.relax = relax
        self.byte_scale = byte_scale
        self.reset()

    @property
    def box(self) -> Box | None:
        """The crop (rmin, rmax, cmin, cmax) in image pixels, None before the first prompt."""
        return self._box

    def reset(self) -> None:
        self._box: Box | None = None
        self._image_size: tuple[int, int] | None = None

    def get_state(self) -> Any:
        return self._box, self._image_size

    def set_state(self, state: Any) -> None:
        self._box, self._image_size = state

    def to_crop(self, box: Box):
        """The point map image -> crop (pixel centres): y' = (y - rmin + 0.5) * h / H_box - 0.5."""
        rmin, rmax, cmin, cmax = box
        scale_y, scale_x = self.size[0] / (rmax - rmin + 1), self.size[1] / (cmax - cmin + 1)

        def fn(y: float, x: float) -> tuple[float, float]:
            return (y - rmin + 0.5) * scale_y - 0.5, (x - cmin + 0.5) * scale_x - 0.5

        return fn

    def forward(self, frame: Frame) -> Frame:
        if len(frame.prompts) != 1:
            raise ValueError(f"BoxCrop works on one image, got {len(frame.prompts)} prompt lists")
        prompts: list[Prompt] = list(frame.prompts[0])
        if not prompts or not isinstance(prompts[0], InsideOutside):
            raise TypeError(
                "BoxCrop needs the interaction to start with an InsideOutside prompt (box + inside point), got "
                f"{prompts[0] if prompts else 'no prompt'!r}"
            )
        self._box = relaxed_box(prompts[0], self.relax)
        self._image_size = (int(frame.image.shape[2]), int(frame.image.shape[3]))
        both = crop_resize(torch.cat((frame.image, frame.prev), dim=1), self._box, self.size, "bilinear", False)
        channels = frame.image.shape[1]
        fn = self.to_crop(self._box)
        return frame.with_tensors(both[:, :channels], both[:, channels:], [[p.map(fn) for p in prompts]])

    def inverse(self, output: torch.Tensor) -> torch.Tensor:
        if self._box is None or self._image_size is None:
            raise RuntimeError("BoxCrop.inverse before forward")
        full = paste_resized(output, self._box, self._image_size, "bicubic", False)
        return byte_scaled(full) if self.byte_scale else full
