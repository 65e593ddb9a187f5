"""Click encodings: binary disks (RITM/FCFI, radius 5 px) and tanh distance maps (f-BRS, R = 260).

Both follow the reference op order in float32 so that the maps match it exactly:
d^2 = (row - y)^2 + (col - x)^2 per click (coordinates divided by R first for distance maps),
minimum over the valid clicks of a polarity (1e6 where there is none), then
disk = d^2 <= R^2, or map = tanh(2 * sqrt(d^2)).
"""

from __future__ import annotations

import torch
from torch import nn

from iseg.interaction.clicks import valid_points_mask

_NO_CLICK = 1e6


def encode_clicks(
    points: torch.Tensor,
    height: int,
    width: int,
    radius: float,
    use_disks: bool = True,
    spatial_scale: float = 1.0,
) -> torch.Tensor:
    """Encode (B, 2N, 2+) points as (B, 2, H, W) maps: channel 0 positive, channel 1 negative.

    Runs a running minimum over click slots instead of materialising a (B, 2N, H, W) tensor,
    so memory stays at a few (B, H, W) buffers whatever N is. While a graph is exported (ONNX),
    the same arithmetic runs over all slots at once (:func:`encode_clicks_graph`), since the
    loop's length and its skipping of empty slots depend on the input.
    """
    if points.dim() != 3 or points.shape[1] % 2:
        raise ValueError(f"points must have shape (B, 2N, 3), got {tuple(points.shape)}")
    if torch.compiler.is_exporting():
        return encode_clicks_graph(points, height, width, radius, use_disks, spatial_scale)
    batch, two_n = points.shape[:2]
    num_points = two_n // 2
    points = points.float()
    valid = valid_points_mask(points)
    rows = torch.arange(height, dtype=torch.float32, device=points.device).view(1, height, 1)
    cols = torch.arange(width, dtype=torch.float32, device=points.device).view(1, 1, width)
    norm = radius * spatial_scale
    maps = []
    for polarity in range(2):
        best = torch.full((batch, height, width), _NO_CLICK, dtype=torch.float32, device=points.device)
        for k in range(polarity * num_points, (polarity + 1) * num_points):
            # No test of whether any sample holds slot k: that would read back to the host once per
            # slot and break torch.compile's graph. An empty slot adds >= 1e6, which the running
            # minimum (started at 1e6) ignores, so the maps are the same.
            dy = rows - (points[:, k, 0] * spatial_scale).view(batch, 1, 1)
            dx = cols - (points[:, k, 1] * spatial_scale).view(batch, 1, 1)
            if not use_disks:
                dy = dy / norm
                dx = dx / norm
            dy2 = torch.where(valid[:, k].view(batch, 1, 1), dy * dy, _NO_CLICK)  # (B, H, 1)
            best = torch.minimum(best, dy2 + dx * dx)
        maps.append(best)
    d2 = torch.stack(maps, dim=1)
    if use_disks:
        return (d2 <= norm**2).float()
    return torch.tanh(2 * torch.sqrt(d2))


def encode_clicks_graph(
    points: torch.Tensor,
    height: int,
    width: int,
    radius: float,
    use_disks: bool = True,
    spatial_scale: float = 1.0,
) -> torch.Tensor:
    """:func:`encode_clicks` without input-dependent control flow, for exported graphs.

    The same float32 operations per pixel and click, on a (B, 2, N, H, W) tensor whose minimum
    over N (and the 1e6 of "no click") gives the same maps.
    """
    batch = points.shape[0]
    points = points.float().reshape(batch, 2, -1, points.shape[-1])
    valid = (points[..., :2].amax(dim=-1) >= 0)[..., None, None]
    rows = torch.arange(height, dtype=torch.float32, device=points.device).view(1, 1, 1, height, 1)
    cols = torch.arange(width, dtype=torch.float32, device=points.device).view(1, 1, 1, 1, width)
    norm = radius * spatial_scale
    dy = rows - (points[..., 0] * spatial_scale)[..., None, None]
    dx = cols - (points[..., 1] * spatial_scale)[..., None, None]
    if not use_disks:
        dy = dy / norm
        dx = dx / norm
    d2 = dy * dy + dx * dx
    d2 = torch.where(valid, d2, torch.full_like(d2, _NO_CLICK)).amin(dim=2).clamp(max=_NO_CLICK)
    if use_disks:
        return (d2 <= norm**2).float()
    return torch.tanh(2 * torch.sqrt(d2))


class ClickEncoder(nn.Module):
    """Module form of :func:`encode_clicks` (no parameters, so no state-dict entries)."""

    def __init__(self, radius: float = 5.0, use_disks: bool = True, spatial_scale: float = 1.0):
        super().__init__()
        self.radius = radius
        self.use_disks = use_disks
        self.spatial_scale = spatial_scale

    def forward(self, image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        return encode_clicks(points, image.shape[2], image.shape[3], self.radius, self.use_disks, self.spatial_scale)
