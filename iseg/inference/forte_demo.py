"""Forte et al.'s prediction pipeline around the network (DeepInteractiveSegmentation ``demo.pred``), as a view.

Forward (before the network), in the reference's order:
1. the previous alpha loses every pixel outside the 8-connected regions of alpha > 0.5 that hold a
   foreground click (:func:`remove_non_fg_connected`);
2. image and previous alpha are resized with Lanczos (``cv2.INTER_LANCZOS4``) to the next multiples
   of ``multiple`` (32) in each dimension;
3. each prompt becomes the block of network pixels that nearest-neighbour resizing of the
   reference's click trimap marks (1x1 to 2x2 pixels for a click), given to the encoder as a
   :class:`~iseg.interaction.prompts.Scribble` of those pixels.

Inverse (after the network): the alpha is resized back with bilinear interpolation (the reference
passes ``cv2.INTER_LANCZOS4`` into ``dst`` by mistake, so OpenCV's default bilinear runs; set
``output_interpolation`` to change it), set to 0 / 1 on background / foreground clicks, and cleaned
with :func:`remove_non_fg_connected` again.

The network's output is an alpha in [0, 1], so the view works in probability space.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from iseg.inference.views import Frame, View
from iseg.interaction.prompts import Prompt, Scribble

INTERPOLATIONS = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "lanczos4": cv2.INTER_LANCZOS4}


def remove_non_fg_connected(alpha: np.ndarray, fg_pixels: Sequence[tuple[int, int]], threshold: float = 0.5) -> np.ndarray:
    """Copy of ``alpha`` (H, W) that is 0 outside the 8-connected components of ``alpha > threshold``
    containing a foreground click; unchanged when there is no foreground click."""
    alpha = np.array(alpha, copy=True)
    if not fg_pixels:
        return alpha
    _, labels = cv2.connectedComponents((alpha > threshold).astype(np.uint8), connectivity=8)
    kept = {int(labels[y, x]) for y, x in fg_pixels} - {0}
    alpha[~np.isin(labels, sorted(kept))] = 0
    return alpha


def force_clicks(alpha: np.ndarray, fg_pixels: Sequence[tuple[int, int]], bg_pixels: Sequence[tuple[int, int]]) -> np.ndarray:
    """Copy of ``alpha`` with 0 at background clicks, then 1 at foreground clicks (the reference's order)."""
    alpha = np.array(alpha, copy=True)
    for y, x in bg_pixels:
        alpha[y, x] = 0
    for y, x in fg_pixels:
        alpha[y, x] = 1
    return alpha


def multiple_size(height: int, width: int, multiple: int = 32) -> tuple[int, int]:
    """The next multiples of ``multiple`` (the reference's ``scale_input`` size)."""
    return int(np.ceil(height / multiple) * multiple), int(np.ceil(width / multiple) * multiple)


def nearest_source_indices(size: int, new_size: int) -> np.ndarray:
    """For each index of a nearest-neighbour resize from ``size`` to ``new_size``, the source index,
    as OpenCV's INTER_NEAREST computes it (asked from OpenCV itself, so rounding agrees)."""
    source = np.arange(size, dtype=np.float32).reshape(1, size)
    return cv2.resize(source, (new_size, 1), interpolation=cv2.INTER_NEAREST)[0].astype(np.int64)


def _pixel(y: float, x: float) -> tuple[int, int]:
    return int(y), int(x)


def split_pixels(prompts: Sequence[Prompt]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(foreground pixels, background pixels) of the prompts' points, in prompt order."""
    fg = [_pixel(y, x) for p in prompts if p.is_positive for y, x in p.anchor_points()]
    bg = [_pixel(y, x) for p in prompts if not p.is_positive for y, x in p.anchor_points()]
    return fg, bg


class ForteDemoView(View):
    """``demo.pred``'s resizing and post-processing around Forte et al.'s network (see the module doc).

    Args:
        multiple: network frame sides are the next multiples of this (32).
        output_interpolation: resize of the alpha back to the image ("bilinear" as the reference runs).
        threshold: the alpha threshold of :func:`remove_non_fg_connected` (0.5).
        post_process: force clicks and remove regions without a foreground click after the network
            (the reference does); off gives the network's resized alpha.
    """

    output_space = "probs"

    def __init__(
        self, multiple: int = 32, output_interpolation: str = "bilinear", threshold: float = 0.5, post_process: bool = True
    ):
        if output_interpolation not in INTERPOLATIONS:
            raise ValueError(f"output_interpolation must be one of {sorted(INTERPOLATIONS)}, got '{output_interpolation}'")
        if multiple < 8 or multiple % 8:
            raise ValueError(f"multiple must be a positive multiple of 8 (the network's stride), got {multiple}")
        self.multiple = multiple
        self.output_interpolation = INTERPOLATIONS[output_interpolation]
        self.threshold = threshold
        self.post_process = post_process
        self._size: tuple[int, int] | None = None
        self._clicks: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]] = []

    def forward(self, frame: Frame) -> Frame:
        height, width = frame.image.shape[-2:]
        new_h, new_w = multiple_size(height, width, self.multiple)
        self._size = (height, width)
        self._clicks = [split_pixels(prompts) for prompts in frame.prompts]
        prev = frame.prev.detach().float().cpu().numpy()
        prev = np.stack([remove_non_fg_connected(p[0], fg, self.threshold)[None] for p, (fg, _) in zip(prev, self._clicks)])
        image = self._resize(frame.image.detach().double().cpu().numpy(), new_h, new_w, cv2.INTER_LANCZOS4)
        prev = self._resize(prev, new_h, new_w, cv2.INTER_LANCZOS4)
        rows, cols = nearest_source_indices(height, new_h), nearest_source_indices(width, new_w)
        prompts = [[self._block(p, rows, cols) for p in prompt_list] for prompt_list in frame.prompts]
        device = frame.image.device
        return frame.with_tensors(
            torch.from_numpy(image).float().to(device), torch.from_numpy(prev).float().to(device), prompts
        )

    def inverse(self, output: torch.Tensor) -> torch.Tensor:
        if self._size is None:
            raise RuntimeError("ForteDemoView.inverse called before forward")
        height, width = self._size
        alpha = self._resize(output.detach().float().cpu().numpy(), height, width, self.output_interpolation)
        if self.post_process:
            for b, (fg, bg) in enumerate(self._clicks):
                alpha[b, 0] = remove_non_fg_connected(force_clicks(alpha[b, 0], fg, bg), fg, self.threshold)
        return torch.from_numpy(alpha).to(output.device)

    @staticmethod
    def _resize(batch: np.ndarray, height: int, width: int, interpolation: int) -> np.ndarray:
        """(B, C, h, w) -> (B, C, height, width) with cv2.resize per channel, dtype kept."""
        if batch.shape[-2:] == (height, width):
            return batch.copy()
        return np.stack(
            [np.stack([cv2.resize(channel, (width, height), interpolation=interpolation) for channel in item]) for item in batch]
        )

    @staticmethod
    def _block(prompt: Prompt, rows: np.ndarray, cols: np.ndarray) -> Scribble:
        """The network pixels whose nearest source pixel is one of the prompt's points."""
        pixels = []
        for y, x in prompt.anchor_points():
            ys, xs = np.flatnonzero(rows == int(y)), np.flatnonzero(cols == int(x))
            pixels += [(float(i), float(j)) for i in ys for j in xs]
        if not pixels:
            raise ValueError(f"{prompt!r} marks no pixel of the resized frame")
        return Scribble(tuple(pixels), prompt.is_positive)

    def reset(self) -> None:
        self._size, self._clicks = None, []

    def get_state(self) -> Any:
        return None
