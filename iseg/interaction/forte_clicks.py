"""Forte et al.'s click encoding: clicked pixels -> a two-channel "trimap" and six Gaussian maps.

The reference (DeepInteractiveSegmentation ``trimap_transform``) marks every clicked pixel in a
trimap (channel 0 background, channel 1 foreground) and, for each channel with a click, turns the
Euclidean distance D of every pixel to the nearest clicked pixel into exp(-D^2 / (2 s^2)) at three
scales s = 0.02 L, 0.08 L, 0.16 L with L = 352 (7.04, 28.16, 56.32 px). Map order:
[bg s1, bg s2, bg s3, fg s1, fg s2, fg s3]; a channel without clicks gives zero maps.

The reference runs OpenCV's exact distance transform; here D^2 is the exact integer squared
distance to the nearest clicked pixel, computed in torch on the network's device, so the maps do
not depend on OpenCV's thread count and agree with the reference to float32 rounding.

Encoders do not know the frame size, so the encoder registered here (``forte_click_pixels``) gives
the clicked pixels; the input adapter (:class:`~iseg.models.forte.inputs.ForteInputs`), which sees
the image, draws the trimap and the maps with :func:`rasterize_trimap` and :func:`gaussian_click_maps`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from iseg.interaction.encoders import PromptLists, register_encoder
from iseg.interaction.prompts import Click, Scribble

REFERENCE_LENGTH = 352
SIGMA_FRACTIONS = (0.02, 0.08, 0.16)
PAD = -1.0


def click_sigmas(length: float = REFERENCE_LENGTH, fractions: Sequence[float] = SIGMA_FRACTIONS) -> tuple[float, ...]:
    """The Gaussian standard deviations in pixels (7.04, 28.16, 56.32 for the reference's L = 352)."""
    return tuple(f * length for f in fractions)


def prompt_pixels(prompt: object) -> list[tuple[int, int]]:
    """The (row, col) pixels a prompt marks: a click its pixel, a scribble each of its points.

    Coordinates are truncated to integers, as indexing the reference's trimap does.
    """
    if isinstance(prompt, Click):
        points = [(prompt.y, prompt.x)]
    elif isinstance(prompt, Scribble):
        points = list(prompt.points)
    else:
        raise TypeError(f"the 'forte_click_pixels' encoder takes clicks or scribbles, got {prompt!r}")
    return [(int(y), int(x)) for y, x in points]


@register_encoder("forte_click_pixels")
class ForteClickEncoder:
    """Prompts -> ``click_pixels`` float (B, K, 3): rows (y, x, 1 foreground / 0 background),
    padded with -1 rows to the longest list (K >= 1)."""

    prompt_types = (Click,)

    def __call__(self, prompt_lists: PromptLists, device: torch.device | str) -> dict[str, torch.Tensor]:
        rows = [
            [[float(y), float(x), float(prompt.is_positive)] for prompt in prompts for y, x in prompt_pixels(prompt)]
            for prompts in prompt_lists
        ]
        return {"click_pixels": pixels_tensor(rows, device)}


def pixels_tensor(rows: Sequence[Sequence[Sequence[float]]], device: torch.device | str | None = None) -> torch.Tensor:
    """Per-sample (y, x, positive) rows as one (B, K, 3) float tensor padded with -1."""
    longest = max([1] + [len(r) for r in rows])
    out = torch.full((len(rows), longest, 3), PAD, dtype=torch.float32)
    for b, sample in enumerate(rows):
        if sample:
            out[b, : len(sample)] = torch.tensor(sample, dtype=torch.float32)
    return out.to(device) if device is not None else out


def _valid_rows(click_pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if click_pixels.dim() != 3 or click_pixels.shape[2] != 3:
        raise ValueError(f"click_pixels must have shape (B, K, 3), got {tuple(click_pixels.shape)}")
    valid = click_pixels[..., 0] >= 0
    ys, xs = click_pixels[..., 0][valid], click_pixels[..., 1][valid]
    if bool(((ys >= height) | (xs >= width) | (xs < 0)).any()):
        raise ValueError(f"a clicked pixel lies outside the {height}x{width} frame: {click_pixels[valid].tolist()[:5]}")
    return valid


def rasterize_trimap(click_pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 2, H, W) float: 1 at background clicks in channel 0 and foreground clicks in channel 1."""
    valid = _valid_rows(click_pixels, height, width)
    trimap = torch.zeros((click_pixels.shape[0], 2, height, width), dtype=torch.float32, device=click_pixels.device)
    b, k = torch.nonzero(valid, as_tuple=True)
    rows = click_pixels[b, k].long()
    trimap[b, rows[:, 2], rows[:, 0], rows[:, 1]] = 1.0
    return trimap


def gaussian_click_maps(
    click_pixels: torch.Tensor, height: int, width: int, sigmas: Sequence[float] | None = None
) -> torch.Tensor:
    """(B, 6, H, W) float32 maps exp(-d^2 / (2 s^2)) per polarity (background first) and scale.

    d^2 is the exact squared distance to the nearest clicked pixel of that polarity, taken as a
    running minimum over the clicked pixels (a few dozen at most), never as a (K, H, W) tensor.
    """
    sigmas = tuple(sigmas) if sigmas is not None else click_sigmas()
    valid = _valid_rows(click_pixels, height, width)
    device = click_pixels.device
    rows = torch.arange(height, dtype=torch.float32, device=device).view(height, 1)
    cols = torch.arange(width, dtype=torch.float32, device=device).view(1, width)
    maps = torch.zeros((click_pixels.shape[0], 2 * len(sigmas), height, width), dtype=torch.float32, device=device)
    for b in range(click_pixels.shape[0]):
        for polarity in (0, 1):
            chosen = click_pixels[b][valid[b] & (click_pixels[b, :, 2] == polarity)]
            if len(chosen) == 0:
                continue
            best = None
            for y, x in chosen[:, :2].tolist():
                d2 = (rows - y) ** 2 + (cols - x) ** 2
                best = d2 if best is None else torch.minimum(best, d2)
            for i, sigma in enumerate(sigmas):
                maps[b, polarity * len(sigmas) + i] = torch.exp(-best / (2 * sigma * sigma))
    return maps
