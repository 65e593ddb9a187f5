"""Views: how the predictor shows the image to the network, and how it reads the answer back.

A view maps a :class:`Frame` (network input image, previous probabilities, one prompt list per
batch item) to another frame before the network (``forward``) and the network's output back
(``inverse``), in reverse order. Prompts are moved with ``prompt.map`` only, so a view works for
clicks, scribbles and boxes alike. Views that keep state between predictions (zoom-in's region of
interest) expose it through ``get_state``/``set_state``, which is how the predictor makes undo
exact.

``output_space`` says what ``inverse`` works on: ``"logits"`` (flip averaging, before the sigmoid,
as the references do) or ``"probs"`` (zoom-in pastes probabilities into a zero map). The predictor
applies the sigmoid once, before the first probability-space view on the way back, so every
logit-space view must come after every probability-space view in the forward order.

Examples: :class:`iseg.inference.zoom_in.ZoomIn`, :class:`iseg.inference.flip.Flip`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch

from iseg.interaction.prompts import Prompt


@dataclass(frozen=True)
class Frame:
    """What the network will see: image (B, 3, H, W), previous probabilities (B, 1, H, W), prompts per item."""

    image: torch.Tensor
    prev: torch.Tensor
    prompts: list[list[Prompt]]
    mirrored: bool = False
    """The second half of the batch is the mirror image of the first (flip): a refiner that
    optimises one variable per image mirrors it for that half."""

    def with_tensors(self, image: torch.Tensor, prev: torch.Tensor, prompts: list[list[Prompt]]) -> Frame:
        return replace(self, image=image, prev=prev, prompts=prompts)


class View:
    """Base class: stateless identity; override what the view changes."""

    output_space: Literal["logits", "probs"] = "logits"

    def forward(self, frame: Frame) -> Frame:
        return frame

    def inverse(self, output: torch.Tensor) -> torch.Tensor:
        return output

    @property
    def image_changed(self) -> bool:
        """True when the last ``forward`` showed the network a new frame (a new zoom-in ROI, say)."""
        return False

    def needs_recompute(self) -> bool:
        """True when the prediction just made should be made again (the view changed after seeing it)."""
        return False

    def reset(self) -> None:
        """Forget everything about the current interaction (new image, or all prompts removed)."""

    def get_state(self) -> Any:
        return None

    def set_state(self, state: Any) -> None:
        """Restore what ``get_state`` returned (undo)."""


def named_views(views: Sequence[View | None] | Mapping[str, View | None] | None) -> dict[str, View]:
    """Views in forward order by name (a mapping's keys, else ``view0``, ``view1``...); None entries are off.

    Checks the order rule of the module docstring.
    """
    if views is None:
        return {}
    items = views.items() if isinstance(views, Mapping) else ((f"view{i}", v) for i, v in enumerate(views))
    result = {str(name): view for name, view in items if view is not None}
    for name, view in result.items():
        if not isinstance(view, View):
            raise TypeError(f"view '{name}' is a {type(view).__name__}, not an iseg.inference.views.View")
    spaces = [view.output_space for view in result.values()]
    if "probs" in spaces and "logits" in spaces[: len(spaces) - spaces[::-1].index("probs")]:
        raise ValueError(
            f"views {list(result)} with output spaces {spaces}: every logit-space view (e.g. flip) must come "
            "after every probability-space view (e.g. zoom-in), since the sigmoid is applied once between them"
        )
    return result
