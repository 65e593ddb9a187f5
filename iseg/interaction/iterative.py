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

import torch
from torch import nn

from iseg.interaction.device_clicks import ClickSampler
from iseg.models.inputs import NetInputs, PromptTensors




def simulate_iterative_clicks(
    net: nn.Module,
    inputs: NetInputs,
    images: torch.Tensor,
    gt: torch.Tensor,
    prompts: PromptTensors,
    num_iters: int,
    sampler: ClickSampler,
    prev_masks: torch.Tensor | None = None,
) -> tuple[torch.Tensor, PromptTensors]:
    """Run ``num_iters`` passes; returns (previous probabilities (B, 1, H, W), prompt tensors).

    ``sampler`` is the training next-click rule: :class:`~iseg.interaction.device_clicks.DeviceClickSampler`
    keeps everything on the images' device (no host round trip between passes);
    :class:`~iseg.interaction.next_click.HostClickSampler` is the same rule on the host.

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
                clicks = sampler(prev_output, gt)
                prompts = inputs.add_clicks(prompts, clicks, prev_output, i)
    finally:
        net.train(was_training)
    return prev_output, prompts
