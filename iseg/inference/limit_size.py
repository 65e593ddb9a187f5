"""Very large images: the network sees them at most ``max_size`` pixels on the longer side.

RITM's demo transform ``LimitLongestSide(max_size=800)`` (ritm_fbrs_fcfi.md §4): when the longer
side of the frame exceeds ``max_size``, the whole frame (image and previous probabilities) is
resized so that its longer side is ``max_size`` (aspect kept, bilinear, ``align_corners=True``,
sizes rounded as zoom-in rounds them), the prompts are moved with it, and the output is resized
back to the frame's size. A frame within the limit passes unchanged.

In the reference's order it comes after zoom-in (ZoomIn -> LimitLongestSide -> sigmoid -> flip):
the first click sees the whole image scaled down, later clicks see zoom-in's crop, which is already
small, so only a crop larger than ``max_size`` is scaled. A 4000x3000 photo then costs about
what an 800x600 one costs per click; the probabilities still come back at full resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from iseg.inference.views import Frame, View


class LimitLongestSide(View):
    """Scale frames whose longer side exceeds ``max_size`` down to it (None: off, every frame passes).

    A probability-space view: put it before every logit-space view (flip) in the forward order,
    e.g. ``{"zoom_in": ZoomIn(), "limit_size": LimitLongestSide(800), "flip": Flip()}``.
    """

    output_space = "probs"

    def __init__(self, max_size: int | None = 800) -> None:
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1):
            raise ValueError(f"LimitLongestSide max_size must be a positive int or None, got {max_size!r}")
        self.max_size = max_size
        self._input_size: tuple[int, int] | None = None  # of the last forward, when it scaled
        self.reset()

    def reset(self) -> None:
        self._input_size = None
        self._shown: tuple[int, int] | None = None
        self._image_changed = False

    def get_state(self) -> tuple[int, int] | None:
        return self._shown

    def set_state(self, state: tuple[int, int] | None) -> None:
        self._shown = state

    @property
    def image_changed(self) -> bool:
        """True when the last ``forward`` scaled a frame of another size than the one before."""
        return self._image_changed

    def output_size(self, height: int, width: int) -> tuple[int, int] | None:
        """The scaled (h, w) of a ``height`` x ``width`` frame, None when it is within the limit."""
        if self.max_size is None or max(height, width) <= self.max_size:
            return None
        scale = self.max_size / max(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))

    def forward(self, frame: Frame) -> Frame:
        height, width = int(frame.image.shape[2]), int(frame.image.shape[3])
        size = self.output_size(height, width)
        self._image_changed = size is not None and self._shown != (height, width)
        if size is None:
            self._input_size = None
            return frame
        self._input_size = self._shown = (height, width)
        channels = frame.image.shape[1]
        both = F.interpolate(torch.cat((frame.image, frame.prev), dim=1), size=size, mode="bilinear", align_corners=True)

        def scaled(y: float, x: float) -> tuple[float, float]:
            # zoom-in's mapping with the whole frame as the region (size * offset / extent)
            return size[0] * y / height, size[1] * x / width

        prompts = [[prompt.map(scaled) for prompt in prompts] for prompts in frame.prompts]
        return frame.with_tensors(both[:, :channels], both[:, channels:], prompts)

    def inverse(self, output: torch.Tensor) -> torch.Tensor:
        if self._input_size is None:
            return output
        return F.interpolate(output, size=self._input_size, mode="bilinear", align_corners=True)
