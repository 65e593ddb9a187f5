"""Iterative click simulation of RITM's ITER-M training: a few gradient-free passes that add clicks.

Each pass runs the network in eval mode (BatchNorm running statistics, no dropout) on the inputs
the method's adapter builds from the image, the previous probabilities and the prompt tensors,
then adds one click per sample from its errors. The caller draws the number of passes once per
batch and runs the final, trained forward on the returned previous probabilities and prompts.

What a method's network takes besides the clicks (FCFI: the click added last and a gate) is the
adapter's business (:class:`~iseg.models.inputs.NetInputs`): it builds each pass's inputs
(pass i is step i-1) and updates its prompt tensors with each pass's clicks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from iseg.interaction.next_click import RandomGenerator, sample_next_clicks
from iseg.interaction.prompts import Click
from iseg.models.inputs import NetInputs, PromptTensors


ClickRule = Callable[[torch.Tensor, torch.Tensor, RandomGenerator, float], Sequence[Click | None]]
"""(probabilities (B, 1, H, W), labels (B, 1, H, W), rng, threshold) -> one click or None per sample;
RITM's random rule (:func:`~iseg.interaction.next_click.sample_next_clicks`) by default."""


def simulate_iterative_clicks(
    net: nn.Module,
    inputs: NetInputs,
    images: torch.Tensor,
    gt: torch.Tensor,
    prompts: PromptTensors,
    num_iters: int,
    rng: RandomGenerator,
    prev_masks: torch.Tensor | None = None,
    pred_thresh: float = 0.49,
    click_rule: ClickRule | None = None,
) -> tuple[torch.Tensor, PromptTensors]:
    """Run ``num_iters`` passes; returns (previous probabilities (B, 1, H, W), prompt tensors).

    ``prev_masks`` None starts from zeros, as the reference does. Pass i (1-based) writes click i
    into slot N-i / 2N-i of ``points``. The network gets its train/eval mode back afterwards.
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    if num_iters < 0:
        raise ValueError(f"num_iters must be >= 0, got {num_iters}")
    batch, _, height, width = images.shape
    if prev_masks is None:
        prev_output = images.new_zeros((batch, 1, height, width))
    elif prev_masks.shape != (batch, 1, height, width):
        raise ValueError(f"prev_masks must have shape {(batch, 1, height, width)}, got {tuple(prev_masks.shape)}")
    else:
        prev_output = prev_masks
    if num_iters == 0:
        return prev_output, prompts
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            for i in range(1, num_iters + 1):
                outputs = net(**inputs(images, prev_output, prompts, step=i - 1, training=True))
                prev_output = inputs.probabilities(outputs)
                clicks = (click_rule or sample_next_clicks)(prev_output, gt, rng, pred_thresh)
                prompts = inputs.add_clicks(prompts, clicks, prev_output, i)
    finally:
        net.train(was_training)
    return prev_output, prompts
