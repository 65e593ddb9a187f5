"""IOG's input adapters: raw 0..255 RGB + the two guidance heatmaps as one 5-channel image.

The predictor gives images in [0, 1] (the shared convention); IOG's networks take raw 0..255 values,
so the adapter scales them. The ``iog_guidance`` encoder
(:class:`~iseg.interaction.iog_guidance.IOGGuidanceEncoder`) builds ``guidance`` from the
:class:`~iseg.interaction.prompts.InsideOutside` prompt and ``click_guidance`` with the correction
clicks added; in training the sampler's ``guidance`` field is both.

- main network: ``net(image=cat(rgb, guidance))`` (correction clicks cannot reach it);
- refinement network: ``net(image=cat(rgb, guidance), guidance=click_guidance)``.

The previous probabilities are not an input of IOG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from iseg.interaction.iog_guidance import IOGGuidanceEncoder
from iseg.models.inputs import NetInputs, PromptTensors


class IOGInputs(NetInputs):
    """``net(image)`` of the main network: (B, 5, H, W) = 255 x RGB and the box + inside-point heatmaps."""

    def __init__(self, size: Sequence[int] = (512, 512)):
        super().__init__([IOGGuidanceEncoder(size)])

    def training_prompts(self, batch: Mapping[str, torch.Tensor]) -> PromptTensors:
        guidance = batch["guidance"].float()
        return {"guidance": guidance, "click_guidance": guidance}

    def add_clicks(self, prompts, clicks, probs, click_index):
        raise NotImplementedError("IOG simulates its correction clicks inside the refinement network (rounds)")

    def network_image(self, image: torch.Tensor, prompts: PromptTensors) -> torch.Tensor:
        guidance = prompts["guidance"].to(image.dtype)
        if guidance.shape[-2:] != image.shape[-2:]:
            raise ValueError(
                f"guidance of size {tuple(guidance.shape[-2:])} for an image of size {tuple(image.shape[-2:])}: "
                "IOG's image is the crop around the box (the box_crop view or the IOG sampler makes it)"
            )
        return torch.cat((image * 255.0, guidance), dim=1)

    def __call__(
        self, image: torch.Tensor, prev_probs: torch.Tensor, prompts: PromptTensors, step: int, training: bool = False
    ) -> dict[str, object]:
        return {"image": self.network_image(image, prompts)}


class IOGRefinementInputs(IOGInputs):
    """``net(image, guidance)`` of the refinement network: the guidance with the correction clicks."""

    def __call__(
        self, image: torch.Tensor, prev_probs: torch.Tensor, prompts: PromptTensors, step: int, training: bool = False
    ) -> dict[str, object]:
        return {"image": self.network_image(image, prompts), "guidance": prompts["click_guidance"].to(image.dtype)}
