"""Forte et al.'s input adapter: clicked pixels -> trimap + six Gaussian click maps, previous alpha.

- inference: the ``forte_click_pixels`` encoder lists the clicked pixels of the prompts in the
  network frame (after :class:`~iseg.inference.forte_demo.ForteDemoView` has resized them);
- training: the sampler's (B, 2N, 3) points become clicked pixels (:func:`points_to_pixels`) and
  every simulated pass appends its clicks;
- each call draws the trimap and the maps at the image's size (:mod:`iseg.interaction.forte_clicks`)
  and passes the previous alpha as it is (the network's user encoder takes it);
- the network's ``instances`` is an alpha in [0, 1], not a logit: ``output_space = "probs"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from iseg.interaction.clicks import valid_points_mask
from iseg.interaction.forte_clicks import ForteClickEncoder, gaussian_click_maps, pixels_tensor, rasterize_trimap
from iseg.interaction.prompts import Click
from iseg.interaction.device_clicks import ClickBatch
from iseg.models.inputs import NetInputs, PromptTensors


def points_to_pixels(points: torch.Tensor) -> torch.Tensor:
    """RITM-layout points (B, 2N, 3) (positives in the first N rows) -> ``click_pixels`` (B, K, 3)."""
    if points.dim() != 3 or points.shape[1] % 2:
        raise ValueError(f"points must have shape (B, 2N, 3), got {tuple(points.shape)}")
    num_points = points.shape[1] // 2
    valid = valid_points_mask(points).cpu()
    coords = points[..., :2].detach().cpu()
    rows = [
        [[float(int(coords[b, k, 0])), float(int(coords[b, k, 1])), float(k < num_points)] for k in range(points.shape[1]) if valid[b, k]]
        for b in range(points.shape[0])
    ]
    return pixels_tensor(rows, points.device)


def append_clicks(click_pixels: torch.Tensor, clicks: Sequence[Click | None]) -> torch.Tensor:
    """``click_pixels`` with one more row per sample that got a click (None: none)."""
    if click_pixels.shape[0] != len(clicks):
        raise ValueError(f"{len(clicks)} clicks for a batch of {click_pixels.shape[0]}")
    rows = [[r for r in sample if r[0] >= 0] for sample in click_pixels.detach().cpu().tolist()]
    for sample, click in zip(rows, clicks):
        if click is not None:
            sample.append([float(int(click.y)), float(int(click.x)), float(click.is_positive)])
    return pixels_tensor(rows, click_pixels.device)


class ForteInputs(NetInputs):
    """``net(image, click_maps, prev_alpha, trimap)`` of :class:`~iseg.models.forte.ForteNet`."""

    output_space = "probs"

    def __init__(self) -> None:
        super().__init__([ForteClickEncoder()])

    def training_prompts(self, batch: Mapping[str, torch.Tensor]) -> PromptTensors:
        return {"click_pixels": points_to_pixels(batch["points"])}

    def add_clicks(
        self, prompts: PromptTensors, clicks: ClickBatch | Sequence[Click | None], probs: torch.Tensor, click_index: int
    ) -> PromptTensors:
        if isinstance(clicks, ClickBatch):  # Forte's rule runs on the host; a device batch comes back as a list
            clicks = clicks.to_clicks()
        return {**prompts, "click_pixels": append_clicks(prompts["click_pixels"], clicks)}

    def __call__(
        self,
        image: torch.Tensor,
        prev_probs: torch.Tensor,
        prompts: PromptTensors,
        step: int,
        training: bool = False,
    ) -> dict[str, object]:
        height, width = image.shape[-2:]
        pixels = prompts["click_pixels"].to(image.device)
        return {
            "image": image,
            "click_maps": gaussian_click_maps(pixels, height, width),
            "prev_alpha": prev_probs,
            "trimap": rasterize_trimap(pixels, height, width),
        }
