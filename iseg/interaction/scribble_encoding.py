"""The scribble encoder: strokes -> positive and negative scribble maps, drawn as the reference draws them.

Reference §1.4 (Scribble-to-Mask interactive.py): a stroke starts with a filled disk of radius 3
where the mouse went down, then each move adds a ``cv2.line`` of thickness 3 between consecutive
points. A click is encoded as a one-point stroke (the disk alone), so click robots and click
protocols run on scribble networks too. Points are (y, x) pixels of the network's frame, rounded
to the nearest pixel; OpenCV clips what lies outside the frame.

Unlike the click encoders, which write coordinates that the networks rasterise, this one draws the
maps itself and so takes the frame's ``size`` as a keyword (S2M's adapter passes it).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import cv2
import numpy as np
import torch

from iseg.interaction.encoders import PromptLists, register_encoder
from iseg.interaction.prompts import Click, Prompt, Scribble

STROKE_THICKNESS = 3
DOWN_RADIUS = 3


def stroke_points(prompt: Prompt) -> list[tuple[int, int]]:
    """The (x, y) integer pixels OpenCV draws a scribble or click through; other prompts are refused."""
    if isinstance(prompt, Scribble):
        points = prompt.points
    elif isinstance(prompt, Click):
        points = ((prompt.y, prompt.x),)
    else:
        raise TypeError(f"the 'scribble_maps' encoder takes scribbles and clicks, got {prompt!r}")
    return [(int(round(float(x))), int(round(float(y)))) for y, x in points]  # numpy floats too


def draw_stroke(canvas: np.ndarray, prompt: Prompt, thickness: int = STROKE_THICKNESS, radius: int = DOWN_RADIUS) -> None:
    """Draw one stroke into a uint8 (H, W) canvas with value 1: a disk at its first point, lines between points."""
    points = stroke_points(prompt)
    cv2.circle(canvas, points[0], radius, 1, thickness=-1)
    for start, end in pairwise(points):
        cv2.line(canvas, start, end, 1, thickness=thickness)


def scribble_maps(prompts: Sequence[Prompt], size: tuple[int, int], thickness: int = STROKE_THICKNESS, radius: int = DOWN_RADIUS) -> np.ndarray:
    """uint8 (2, H, W) {0, 1}: channel 0 the positive strokes, channel 1 the negative ones."""
    maps = np.zeros((2, *size), np.uint8)
    for prompt in prompts:
        draw_stroke(maps[0 if prompt.is_positive else 1], prompt, thickness, radius)
    return maps


@register_encoder("scribble_maps")
class ScribbleMapsEncoder:
    """Scribble (and click) prompts -> ``scribbles`` float32 (B, 2, H, W): positive, negative strokes."""

    prompt_types = (Scribble, Click)

    def __init__(self, thickness: int = STROKE_THICKNESS, radius: int = DOWN_RADIUS):
        if thickness < 1 or radius < 0:
            raise ValueError(f"thickness must be >= 1 and radius >= 0, got {thickness} and {radius}")
        self.thickness = thickness
        self.radius = radius

    def __call__(
        self, prompt_lists: PromptLists, device: torch.device | str, *, size: tuple[int, int]
    ) -> dict[str, torch.Tensor]:
        maps = np.stack([scribble_maps(prompts, size, self.thickness, self.radius) for prompts in prompt_lists])
        return {"scribbles": torch.from_numpy(maps).to(device=device, dtype=torch.float32)}
