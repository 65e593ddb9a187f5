"""IOG's guidance (s2m_iog_forte.md §2.3-2.4): points from a mask, Gaussian heatmaps, refinement clicks.

All in the coordinates of the network's crop (512 x 512 in the reference), (y, x) = (row, column):

- the inside point is the most interior pixel of the object: arg-max (first in row-major order) of
  the Euclidean distance transform of the mask padded by one background pixel, so the crop border
  counts as background;
- the outside points are the four corners of the object's tight box moved out by ``pad`` (10) and
  clipped to [0, size] (size, not size - 1, as the reference does); all four are used;
- heatmaps: G = exp(-4 ln2 d^2 / fwhm^2) (fwhm 10, the reference's "sigma"), channel 0 the inside
  point, channel 1 the maximum over the corners, both scaled jointly to [0, 255];
- a refinement click (the refinement branch's simulated user) is the arg-max of the distance
  transform of the error (no padding); its Gaussian is max-combined into channel 0 (positive) or
  1 (negative) and both channels are truncated to uint8 values.

The reference reads the label of a refinement click at gt[col, row] (transposed). ``label_rule``
chooses: ``"correct"`` (default) reads gt[row, col]; ``"parity"`` reproduces the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from iseg.interaction.encoders import PromptLists, register_encoder
from iseg.interaction.prompts import Click, InsideOutside

FWHM = 10.0
CORNER_PAD = 10
LabelRule = Literal["correct", "parity"]
LABEL_RULES = ("correct", "parity")


def gaussian(height: int, width: int, y: float, x: float, fwhm: float = FWHM) -> np.ndarray:
    """(H, W) float64 Gaussian centred at (y, x) whose full width at half maximum is ``fwhm``."""
    cols = np.arange(0, width, 1, float)
    rows = np.arange(0, height, 1, float)[:, np.newaxis]
    return np.exp(-4 * np.log(2) * ((cols - x) ** 2 + (rows - y) ** 2) / fwhm**2)


def inside_point(mask: np.ndarray) -> tuple[int, int]:
    """(y, x) of the most interior object pixel (the crop border counts as background)."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ValueError(f"the mask of shape {mask.shape} is empty: it has no inside point")
    distance = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return int(y), int(x)


def outside_corners(
    y0: float, x0: float, y1: float, x1: float, height: int, width: int, pad: int = CORNER_PAD
) -> list[tuple[float, float]]:
    """(y, x) of a box's corners moved out by ``pad``, clipped to [0, height] x [0, width]:
    left-top, left-bottom, right-top, right-bottom (the reference's order)."""
    left, right = max(x0 - pad, 0), min(x1 + pad, width)
    top, bottom = max(y0 - pad, 0), min(y1 + pad, height)
    return [(top, left), (bottom, left), (top, right), (bottom, right)]


def mask_points(mask: np.ndarray, pad: int = CORNER_PAD) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """The reference's guidance points of a crop mask: (inside (y, x), four outside corners (y, x))."""
    mask = np.asarray(mask, bool)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        raise ValueError(f"the mask of shape {mask.shape} is empty: it has no guidance points")
    corners = outside_corners(int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max()), *mask.shape, pad=pad)
    return inside_point(mask), [(int(y), int(x)) for y, x in corners]


def guidance_heatmaps(
    inside: tuple[float, float], corners: Sequence[tuple[float, float]], height: int, width: int, fwhm: float = FWHM
) -> np.ndarray:
    """(2, H, W) float32 in [0, 255]: inside Gaussian, maximum of the corner Gaussians, scaled jointly."""
    maps = np.zeros((2, height, width), np.float32)
    maps[0] = gaussian(height, width, *inside, fwhm=fwhm)
    maps[1] = np.max([gaussian(height, width, *corner, fwhm=fwhm) for corner in corners], axis=0)
    low, high = maps.min(), maps.max()
    return (255 * (maps - low) / (high - low + 1e-10)).astype(np.float32)


def mask_guidance(mask: np.ndarray, pad: int = CORNER_PAD, fwhm: float = FWHM) -> np.ndarray:
    """The heatmaps of a crop mask (all zeros for an empty mask, as the reference)."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.zeros((2, *mask.shape), np.float32)
    inside, corners = mask_points(mask, pad)
    return guidance_heatmaps(inside, corners, *mask.shape, fwhm=fwhm)


def add_click(guidance: np.ndarray, y: float, x: float, positive: bool, fwhm: float = FWHM) -> np.ndarray:
    """(2, H, W) guidance with a click's Gaussian max-combined into channel 0 (positive) or 1, as uint8 values."""
    out = np.array(guidance, np.float64)
    channel = 0 if positive else 1
    out[channel] = 255 * np.maximum(np.asarray(guidance[channel], np.float32) / 255, gaussian(*out.shape[1:], y, x, fwhm))
    return out.astype(np.uint8).astype(np.float32)


def check_label_rule(label_rule: str) -> LabelRule:
    if label_rule not in LABEL_RULES:
        raise ValueError(f"label_rule must be one of {LABEL_RULES}, got {label_rule!r}")
    return label_rule  # type: ignore[return-value]


def refinement_click(
    pred: np.ndarray, gt: np.ndarray, label_rule: LabelRule = "correct", valid: np.ndarray | None = None
) -> Click | None:
    """The refinement branch's next click: farthest pixel from the error boundary (no border padding).

    ``label_rule="parity"`` reads the label at gt[x, y] as the reference does (square maps only).
    Pixels outside ``valid`` are never errors. None when there is no error.
    """
    check_label_rule(label_rule)
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction of shape {pred.shape} for a gt of shape {gt.shape}")
    error = pred ^ gt
    if valid is not None:
        error &= np.asarray(valid, bool)
    if not error.any():
        return None
    distance = distance_transform_edt(error)
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    if label_rule == "parity":
        if gt.shape[0] != gt.shape[1]:
            raise ValueError(f"label_rule='parity' (transposed lookup) needs a square map, got {gt.shape}")
        positive = bool(gt[x, y])
    else:
        positive = bool(gt[y, x])
    return Click(int(y), int(x), positive)


@register_encoder("iog_guidance")
class IOGGuidanceEncoder:
    """IOG prompts (network frame) -> ``guidance`` and ``click_guidance`` (B, 2, H, W) in [0, 255].

    Each list starts with an :class:`InsideOutside` prompt: its inside point (rounded) and its box
    corners (rounded, moved out by ``pad``, clipped) make ``guidance``; ``click_guidance`` has every
    later click max-combined in order (the refinement branch's correction clicks).
    """

    prompt_types = (InsideOutside, Click)

    def __init__(self, size: Sequence[int] = (512, 512), pad: int = CORNER_PAD, fwhm: float = FWHM):
        self.size = (int(size[0]), int(size[1]))
        self.pad = pad
        self.fwhm = fwhm

    def __call__(self, prompt_lists: PromptLists, device: torch.device | str) -> dict[str, torch.Tensor]:
        height, width = self.size
        initial, maps = [], []
        for prompts in prompt_lists:
            if not prompts or not isinstance(prompts[0], InsideOutside):
                first = prompts[0] if prompts else None
                raise TypeError(f"the 'iog_guidance' encoder needs an InsideOutside prompt first, got {first!r}")
            box, inside = prompts[0].box, prompts[0].inside
            corners = outside_corners(
                round(box.y0), round(box.x0), round(box.y1), round(box.x1), height, width, self.pad
            )
            guidance = guidance_heatmaps((round(inside.y), round(inside.x)), corners, height, width, self.fwhm)
            initial.append(guidance)
            for click in prompts[1:]:
                if not isinstance(click, Click):
                    raise TypeError(f"the 'iog_guidance' encoder takes clicks after the InsideOutside prompt, got {click!r}")
                guidance = add_click(guidance, click.y, click.x, click.is_positive, self.fwhm)
            maps.append(guidance)
        return {
            "guidance": torch.from_numpy(np.stack(initial)).to(device),
            "click_guidance": torch.from_numpy(np.stack(maps)).to(device),
        }
