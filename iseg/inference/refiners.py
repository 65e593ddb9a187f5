"""Refiners: how the predictor runs the network for one prediction.

The refiner slot is where inference-time optimisation goes (the BRS family optimises inputs or
features against the clicks before the final forward, :mod:`iseg.inference.brs`); it owns the
gradient mode. It sees what the network sees: the inputs the method's adapter built and a
:class:`RefineContext` (every prompt in the network's frame, one list per batch item; whether a
view changed the frame, e.g. a new zoom-in ROI). A refiner that keeps state between predictions
exposes it through ``get_state``/``set_state`` so that the predictor's undo stays exact, like
views do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from iseg.interaction.prompts import Prompt


@dataclass(frozen=True)
class RefineContext:
    """What a refiner may need besides the network inputs."""

    step: int
    prompts: Sequence[Sequence[Prompt]]
    image_changed: bool = False
    mirrored: bool = False

    @property
    def num_images(self) -> int:
        """Distinct images in the batch (the mirrored half of a flip batch is not one)."""
        return len(self.prompts) // 2 if self.mirrored else len(self.prompts)


class Refiner:
    """Base class: ``refiner(net, inputs, context)`` returns the network's outputs for the prediction."""

    # Whether the refiner runs the network as a whole, so that the predictor may run a copy with
    # BatchNorm folded into the convolutions (BRS refiners hook inner modules: they may not).
    accepts_folded_network = False

    def __call__(self, net: nn.Module, inputs: Mapping[str, Any], context: RefineContext) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must run the network")

    def network_prompts(self, prompt_lists: Sequence[Sequence[Prompt]]) -> list[list[Prompt]]:
        """The prompts the network's encoders get (all by default; BRS feeds only the first few)."""
        return [list(prompts) for prompts in prompt_lists]

    def reset(self) -> None:
        """Forget the current interaction (new image, or all prompts removed)."""

    def get_state(self) -> Any:
        return None

    def set_state(self, state: Any) -> None:
        """Restore what ``get_state`` returned (undo)."""


class NoRefine(Refiner):
    """One forward without gradients (RITM's NoBRS)."""

    accepts_folded_network = True

    def __call__(self, net: nn.Module, inputs: Mapping[str, Any], context: RefineContext) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return net(**inputs)
