"""Refiners: how the predictor runs the network for one prediction.

The refiner slot is where inference-time optimisation goes (the BRS family optimises inputs or
features against the clicks before the final forward); it owns the gradient mode. A refiner that
keeps state between predictions exposes it through ``get_state``/``set_state`` so that the
predictor's undo stays exact, like views do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


class Refiner:
    """Base class: ``refiner(net, inputs, step)`` returns the network's outputs for the prediction."""

    def __call__(self, net: nn.Module, inputs: Mapping[str, Any], step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must run the network")

    def reset(self) -> None:
        """Forget the current interaction (new image, or all prompts removed)."""

    def get_state(self) -> Any:
        return None

    def set_state(self, state: Any) -> None:
        """Restore what ``get_state`` returned (undo)."""



class NoRefine(Refiner):
    """One forward without gradients (RITM's NoBRS)."""

    def __call__(self, net: nn.Module, inputs: Mapping[str, Any], step: int) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return net(**inputs)
