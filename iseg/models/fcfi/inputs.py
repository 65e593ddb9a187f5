"""FCFI's input adapter: besides RITM's inputs, the newest click and CFFM's gate.

- ``new_points``: at inference the last click of each (zoom-in / flip transformed) list, as the
  reference's evaluation builds it (:class:`~iseg.interaction.encoders.NewestClickEncoder`); in
  training the sampler's first positive click, then the click each simulated pass added
  (:func:`new_click_points`);
- ``gate``: 0.0 for the first prediction of an interaction (step 0: the feedback is all zeros),
  1.0 afterwards, whatever the previous mask holds;
- the previous probabilities always enter as channel 3 (they are the feedback);
- ``is_training``: the training path (soft window) in every training call, also the eval-mode
  simulated passes and validation, as the reference's trainers do; the network's own mode at
  inference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from iseg.interaction.device_clicks import ClickBatch
from iseg.interaction.encoders import NewestClickEncoder, PointsEncoder
from iseg.interaction.prompts import Click
from iseg.models.inputs import ClickInputs, NetInputs, PromptTensors


def feedback_gate(step: int) -> float:
    """CFFM's gate for a prediction after ``step`` earlier ones: 0.0 for the first, then 1.0."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return 0.0 if step == 0 else 1.0


def first_click_new_points(points: torch.Tensor) -> torch.Tensor:
    """Long (B, 1, 3): each sample's first positive slot (y, x) with label 1 (FCFI's initial new point).

    A sample without positive clicks keeps the padding (-1, -1), as in the reference.
    """
    if points.dim() != 3 or points.shape[2] < 2:
        raise ValueError(f"points must have shape (B, 2N, 3), got {tuple(points.shape)}")
    first = points[:, 0, :2].long()
    return torch.cat((first, torch.ones_like(first[:, :1])), dim=1).unsqueeze(1)


def new_click_points(clicks: ClickBatch | Sequence[Click | None], pred_probs: torch.Tensor) -> torch.Tensor:
    """The click each sample just received as FCFI's ``new_points``: long (B, 1, 3) rows (y, x, label).

    label is 1 for a positive click and 0 for a negative one. A sample that got no click (no
    error region) gets FCFI's stand-in point (H//2 - 1, W//2 - 1) labelled with the predicted
    probability there. The reference stores that soft label as a float, but its correction module
    casts the whole point to long before using the label, so the effective label is the
    probability truncated: 0, or 1 only where the probability is exactly 1.0. That truncated
    value is what is returned here. Computed on the probabilities' device, without a host read.
    """
    if not isinstance(clicks, ClickBatch):
        clicks = ClickBatch.from_clicks(clicks, pred_probs.device)
    if pred_probs.dim() != 4 or pred_probs.shape[1] != 1 or pred_probs.shape[0] != len(clicks):
        raise ValueError(
            f"pred_probs must have shape (B={len(clicks)}, 1, H, W), got {tuple(pred_probs.shape)}"
        )
    height, width = pred_probs.shape[-2:]
    cy, cx = height // 2 - 1, width // 2 - 1
    centre_labels = pred_probs[:, 0, cy, cx].detach().float().long()
    clicked = torch.stack((clicks.y.long(), clicks.x.long(), clicks.positive.long()), dim=1).to(pred_probs.device)
    stand_in = torch.stack((torch.full_like(centre_labels, cy), torch.full_like(centre_labels, cx), centre_labels), dim=1)
    rows = torch.where(clicks.valid.to(pred_probs.device).view(-1, 1), clicked, stand_in)
    return rows.view(len(clicks), 1, 3)


class FCFIInputs(ClickInputs):
    """``net(image, points, new_points, gate, is_training)`` of FCFI's feedback networks."""

    def __init__(self, net_clicks_limit: int | None = None):
        NetInputs.__init__(self, [PointsEncoder(net_clicks_limit), NewestClickEncoder()])
        self.prev_mask = True
        self.net_clicks_limit = net_clicks_limit

    def config(self) -> dict[str, object]:
        return {"_target_": f"{type(self).__module__}.{type(self).__qualname__}", "net_clicks_limit": self.net_clicks_limit}

    def training_prompts(self, batch: Mapping[str, torch.Tensor]) -> PromptTensors:
        points = batch["points"]
        return {"points": points, "new_points": first_click_new_points(points)}

    def add_clicks(
        self, prompts: PromptTensors, clicks: ClickBatch | Sequence[Click | None], probs: torch.Tensor, click_index: int
    ) -> PromptTensors:
        prompts = super().add_clicks(prompts, clicks, probs, click_index)
        return {**prompts, "new_points": new_click_points(clicks, probs)}

    def __call__(
        self,
        image: torch.Tensor,
        prev_probs: torch.Tensor,
        prompts: PromptTensors,
        step: int,
        training: bool = False,
    ) -> dict[str, object]:
        return {
            "image": self.network_image(image, prev_probs),
            "points": prompts["points"],
            "new_points": prompts["new_points"],
            "gate": feedback_gate(step),
            "is_training": True if training else None,
        }
