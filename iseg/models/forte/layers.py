"""Weight-standardised convolution and the GroupNorm that replace Conv2d/BatchNorm2d in Forte et al.'s network.

Weight standardisation (Qiao et al.) normalises each output filter before convolving:
w' = (w - mean(w)) / (sqrt(var(w) + 1e-12) + 1e-5), mean and unbiased variance over (in, kh, kw).
With GroupNorm (32 groups) it makes the network independent of the batch size, which is why the
reference uses it (its training batches are small). Biases are used as stored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GROUPS = 32


class WSConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose weight is standardised per output channel at every forward."""

    def standardized_weight(self) -> torch.Tensor:
        weight = self.weight
        mean = weight.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True).mean(dim=3, keepdim=True)
        weight = weight - mean
        std = torch.sqrt(torch.var(weight.reshape(weight.size(0), -1), dim=1) + 1e-12).view(-1, 1, 1, 1) + 1e-5
        return weight / std.expand_as(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.standardized_weight(), self.bias, self.stride, self.padding, self.dilation, self.groups)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (eps 1e-5, affine): the reference's "BatchNorm2d"."""
    return nn.GroupNorm(GROUPS, channels)
