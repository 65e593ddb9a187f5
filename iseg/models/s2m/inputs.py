"""S2M's input adapter: ``net(image, prev_mask, scribbles)``.

- at inference the scribble maps are drawn from the prompts of the open round only
  (:class:`~iseg.interaction.scribble_encoding.ScribbleMapsEncoder`), and the previous mask is the
  map committed at the end of the last round, not the last prediction: the reference demo re-runs
  the network on every stroke with (image, committed mask, strokes since the commit);
- in training both come from the sampler's batch fields ``prev_mask`` (B, 1, H, W) and
  ``scribbles`` (B, 2, H, W) (0/1 uint8), and no simulated passes follow (the reference has none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from iseg.interaction.encoders import PromptLists
from iseg.interaction.prompts import Click, Prompt
from iseg.interaction.scribble_encoding import ScribbleMapsEncoder
from iseg.models.inputs import NetInputs, PromptTensors


class S2MInputs(NetInputs):
    """The scribble maps of the open round and the committed mask, for :class:`~iseg.models.s2m.S2MNet`."""

    def __init__(self, thickness: int = 3, radius: int = 3):
        super().__init__([ScribbleMapsEncoder(thickness, radius)])

    def encode(
        self, prompt_lists: PromptLists, device: torch.device | str, size: tuple[int, int] | None = None
    ) -> PromptTensors:
        """The scribble maps, drawn at the frame's ``size`` (H, W)."""
        if size is None:
            raise ValueError("S2M's scribble maps are drawn at the network frame's size: pass size=(H, W)")
        tensors: PromptTensors = {}
        for encoder in self.encoders:
            tensors.update(encoder(prompt_lists, device, size=size))
        return tensors

    def round_inputs(
        self, prompts: Sequence[Prompt], round_start: int, last: torch.Tensor, committed: torch.Tensor
    ) -> tuple[list[Prompt], torch.Tensor]:
        return list(prompts[round_start:]), committed

    def training_prompts(self, batch: Mapping[str, torch.Tensor]) -> PromptTensors:
        return {"scribbles": _field(batch, "scribbles", 2)}

    def training_prev_mask(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return _field(batch, "prev_mask", 1)

    def add_clicks(
        self, prompts: PromptTensors, clicks: Sequence[Click | None], probs: torch.Tensor, click_index: int
    ) -> PromptTensors:
        raise ValueError(
            "S2M trains on one simulated round per sample (the sampler's previous mask and scribbles), "
            "without simulated click passes: set the method's max_num_next_clicks to 0"
        )

    def __call__(
        self,
        image: torch.Tensor,
        prev_probs: torch.Tensor,
        prompts: PromptTensors,
        step: int,
        training: bool = False,
    ) -> dict[str, object]:
        return {"image": image, "prev_mask": prev_probs, "scribbles": prompts["scribbles"]}


def _field(batch: Mapping[str, torch.Tensor], name: str, channels: int) -> torch.Tensor:
    """A float (B, C, H, W) batch field, with an error naming it when the sampler did not provide it."""
    if name not in batch:
        raise KeyError(
            f"the S2M adapter reads the batch field '{name}', which the data's sampler did not give "
            f"(fields: {sorted(batch)}); S2M trains with iseg.interaction.scribbles.S2MSampler"
        )
    value = batch[name]
    if value.dim() != 4 or value.shape[1] != channels:
        raise ValueError(f"batch field '{name}' must have shape (B, {channels}, H, W), got {tuple(value.shape)}")
    return value.float()
