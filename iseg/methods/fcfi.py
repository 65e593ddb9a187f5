"""FCFI training (reference §3.5) as a LightningModule on the ITER-M core of IterativeClickModule.

The loop is RITM's (0..3 gradient-free eval-mode passes that add clicks, then one trained pass),
with the two extra network inputs of FCFI: ``new_points``, the click added last (at first the
sampler's first positive click; after a pass without an error region, FCFI's stand-in point, see
:func:`iseg.interaction.next_click.new_click_points`), and ``gate``, 0 while there is no previous
mask (first pass; final pass when no pass ran) and 1 otherwise. Every call uses the network's
training-path correction (soft window), also in the eval-mode passes and in validation, as the
reference's trainers do (they never pass ``is_training``, whose default there is True).

Losses: NFL on ``instances`` + weighted NFL on ``updated_feedback2`` + weighted masked NFL on
``updated_feedback1`` (pixels where the soft window is exactly 1.0). The feedback maps are
probabilities but go through the losses' sigmoid again (double sigmoid), and the aux output gets
no loss: both as in the reference trainers.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from iseg.interaction.clicks import Click
from iseg.interaction.iterative import simulate_iterative_clicks
from iseg.interaction.next_click import new_click_points
from iseg.losses import MaskedNormalizedFocalLoss, NormalizedFocalLoss
from iseg.methods.iterative_click import IterativeClickModule


def first_click_new_points(points: torch.Tensor) -> torch.Tensor:
    """Long (B, 1, 3): each sample's first positive slot (y, x) with label 1 (FCFI's initial new point).

    A sample without positive clicks keeps the padding (-1, -1), as in the reference.
    """
    if points.dim() != 3 or points.shape[2] < 2:
        raise ValueError(f"points must have shape (B, 2N, 3), got {tuple(points.shape)}")
    first = points[:, 0, :2].long()
    return torch.cat((first, torch.ones_like(first[:, :1])), dim=1).unsqueeze(1)


class _FeedbackPasses:
    """FCFI's inputs of the simulated passes: gate 0 on pass 1, then 1; new_points = last click."""

    def __init__(self, net: torch.nn.Module, new_points: torch.Tensor):
        self.net = net
        self.new_points = new_points

    def call(self, net_input: torch.Tensor, points: torch.Tensor, pass_index: int) -> dict:
        gate = 0.0 if pass_index == 1 else 1.0
        return self.net(net_input, points, self.new_points, gate, is_training=True)

    def clicks_added(self, clicks: list[Click | None], probs: torch.Tensor) -> None:
        self.new_points = new_click_points(clicks, probs)


class FCFIModule(IterativeClickModule):
    """Trains an FCFI network (``takes_feedback``: ``net(input, points, new_points, gate, is_training)``).

    Args beyond :class:`IterativeClickModule`:
        feedback1_loss_weight: masked NFL on ``updated_feedback1`` (0.2 HRNet18s COCO+LVIS, 1.0 R101 SBD).
        feedback2_loss_weight: NFL on ``updated_feedback2`` (same values).
    ``aux_loss_weight`` is fixed at 0: FCFI configures the aux BCE but its trainers never add it.
    """

    def __init__(
        self,
        *args,
        feedback1_loss_weight: float = 0.2,
        feedback2_loss_weight: float = 0.2,
        aux_loss_weight: float = 0.0,
        **kwargs,
    ):
        if aux_loss_weight:
            raise ValueError(
                f"aux_loss_weight={aux_loss_weight}: FCFI's trainers never add the aux loss; leave it at 0"
            )
        super().__init__(*args, aux_loss_weight=0.0, **kwargs)
        if not getattr(self.net, "takes_feedback", False):
            raise TypeError(
                f"{type(self.net).__name__} is not an FCFI network (no takes_feedback = True); "
                "use IterativeClickModule for RITM networks"
            )
        if not getattr(self.net, "with_prev_mask", False):
            raise ValueError("FCFI networks are trained with the previous mask (set with_prev_mask: true)")
        self.hparams.update(
            {"feedback1_loss_weight": feedback1_loss_weight, "feedback2_loss_weight": feedback2_loss_weight}
        )
        self.feedback1_loss_weight = feedback1_loss_weight
        self.feedback2_loss_weight = feedback2_loss_weight
        alpha, gamma = self.instance_loss.alpha, self.instance_loss.gamma
        self.feedback1_loss = MaskedNormalizedFocalLoss(alpha=alpha, gamma=gamma)
        self.feedback2_loss = NormalizedFocalLoss(alpha=alpha, gamma=gamma)

    def forward(
        self,
        images: torch.Tensor,
        points: torch.Tensor,
        prev_masks: torch.Tensor | None = None,
        new_points: torch.Tensor | None = None,
        gate: float = 0.0,
    ) -> dict:
        """Training-path forward on image + previous probabilities; new_points default: first clicks."""
        if prev_masks is None:
            prev_masks = torch.zeros_like(images[:, :1])
        if new_points is None:
            new_points = first_click_new_points(points)
        return self.net(torch.cat((images, prev_masks), dim=1), points, new_points, gate, is_training=True)

    def interactive_forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """ITER-M passes with FCFI's gate and newest-click inputs, then the trained forward."""
        images, gt, points = batch["images"], batch["instances"], batch["points"]
        num_iters = int(self.rng.integers(0, self.max_num_next_clicks + 1))
        passes = _FeedbackPasses(self.net, first_click_new_points(points))
        prev_masks, points = simulate_iterative_clicks(
            self.net, images, None, gt, points, num_iters, self.rng,
            call_net=passes.call, on_clicks=passes.clicks_added,
        )
        gate = 1.0 if num_iters > 0 else 0.0
        return self(images, points, prev_masks, passes.new_points, gate)

    def losses(self, outputs: Mapping[str, torch.Tensor], gt: torch.Tensor, stage: str) -> tuple[torch.Tensor, dict]:
        """(weighted total, {'<stage>/loss_<term>': unweighted batch mean}); zero-weight terms are skipped."""
        instance_loss = self.instance_loss(outputs["instances"], gt).mean()
        loss = self.instance_loss_weight * instance_loss
        logs = {f"{stage}/loss_instance": instance_loss}
        if self.feedback1_loss_weight:
            # the window counts only where it is exactly 1.0 after nearest upsampling to the labels
            window = F.interpolate(outputs["valid_masks"], size=gt.shape[-2:], mode="nearest")
            feedback1 = self.feedback1_loss(outputs["updated_feedback1"], gt, window).mean()
            loss = loss + self.feedback1_loss_weight * feedback1
            logs[f"{stage}/loss_feedback1"] = feedback1
        if self.feedback2_loss_weight:
            feedback2 = self.feedback2_loss(outputs["updated_feedback2"], gt).mean()
            loss = loss + self.feedback2_loss_weight * feedback2
            logs[f"{stage}/loss_feedback2"] = feedback2
        return loss, logs
