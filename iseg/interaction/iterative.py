"""Iterative click simulation of RITM's ITER-M training: a few gradient-free passes that add clicks.

Each pass runs the network in eval mode (BatchNorm running statistics, no dropout) on the image
plus the previous probabilities, then adds one click per sample from its errors. The caller draws
the number of passes once per batch and runs the final, trained forward on the returned previous
probabilities and points.

Networks with extra inputs (FCFI: the click added by the previous pass and a gate) keep the same
loop: ``call_net`` replaces the plain ``net(input, points)`` call and ``on_clicks`` sees each
pass's new clicks, so the input they build for the next pass stays in step with the points.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from iseg.interaction.clicks import Click
from iseg.interaction.next_click import RandomGenerator, sample_next_clicks, write_clicks

Net = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
# (network input, points, pass index 1..num_iters) -> outputs with 'instances' logits
NetCall = Callable[[torch.Tensor, torch.Tensor, int], dict[str, torch.Tensor]]
# (clicks added by the pass, one per sample or None, probabilities (B, 1, H, W) they came from)
ClicksHook = Callable[[list[Click | None], torch.Tensor], None]


def simulate_iterative_clicks(
    net: Net,
    images: torch.Tensor,
    prev_masks: torch.Tensor | None,
    gt: torch.Tensor,
    points: torch.Tensor,
    num_iters: int,
    rng: RandomGenerator,
    with_prev_mask: bool = True,
    pred_thresh: float = 0.49,
    call_net: NetCall | None = None,
    on_clicks: ClicksHook | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``num_iters`` passes; returns (previous probabilities (B, 1, H, W), points (B, 2N, 3)).

    ``prev_masks`` None starts from zeros, as the reference does. Pass i (1-based) writes click i
    into slot N-i / 2N-i. ``net(input, points)`` must return a dict with ``instances`` logits;
    with ``with_prev_mask`` its input is the image with the probabilities as 4th channel.
    An ``nn.Module`` net gets its train/eval mode back afterwards. ``call_net(input, points, i)``,
    when given, runs pass i instead of ``net(input, points)`` (``net`` is then only switched to
    eval mode); ``on_clicks(clicks, probs)`` is called after each pass with the clicks it added.
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
        return prev_output, points
    was_training = net.training if isinstance(net, nn.Module) else None
    try:
        if isinstance(net, nn.Module):
            net.eval()
        with torch.no_grad():
            for i in range(1, num_iters + 1):
                net_input = torch.cat((images, prev_output), dim=1) if with_prev_mask else images
                outputs = call_net(net_input, points, i) if call_net is not None else net(net_input, points)
                prev_output = torch.sigmoid(outputs["instances"])
                clicks = sample_next_clicks(prev_output, gt, rng, pred_thresh)
                points = write_clicks(points, clicks, i)
                if on_clicks is not None:
                    on_clicks(clicks, prev_output)
    finally:
        if isinstance(net, nn.Module):
            net.train(was_training)
    return prev_output, points
