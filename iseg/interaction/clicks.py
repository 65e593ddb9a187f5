"""The official (B, 2N, 3) points layout shared by every RITM-lineage model.

Layout (RITM/FCFI): rows 0..N-1 hold positive clicks, rows N..2N-1 negative clicks, each row
(y, x, order) with y = row and x = column in network-input pixels (floats allowed); unused rows
are (-1, -1, -1). A row is a valid click when max(y, x) >= 0.
"""

from __future__ import annotations

from collections.abc import Sequence
import torch

from iseg.interaction.prompts import Click

PAD_VALUE = -1.0


def clicks_to_points(
    clicks_per_sample: Sequence[Sequence[Click]],
    num_max_points: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Pack click lists into the (B, 2N, 3) layout with order = 0-based global click index.

    N is ``num_max_points`` when given (clicks beyond it are dropped, as the reference's
    ``net_clicks_limit`` does), else max(#positive, #negative, 1) over the batch.
    """
    indexed = [list(enumerate(clicks)) for clicks in clicks_per_sample]
    positives = [[(i, c) for i, c in sample if c.is_positive] for sample in indexed]
    negatives = [[(i, c) for i, c in sample if not c.is_positive] for sample in indexed]
    if num_max_points is None:
        num_max_points = max([1] + [len(p) for p in positives] + [len(n) for n in negatives])
    points = torch.full((len(clicks_per_sample), 2 * num_max_points, 3), PAD_VALUE, dtype=torch.float32)
    for b in range(len(clicks_per_sample)):
        for offset, group in ((0, positives[b]), (num_max_points, negatives[b])):
            for k, (order, click) in enumerate(group[:num_max_points]):
                points[b, offset + k] = torch.tensor([click.y, click.x, float(order)])
    return points.to(device) if device is not None else points


def points_to_clicks(points: torch.Tensor) -> list[list[Click]]:
    """Unpack a (B, 2N, 3) tensor into click lists sorted by their order column."""
    if points.dim() != 3 or points.shape[1] % 2 or points.shape[2] < 2:
        raise ValueError(f"points must have shape (B, 2N, 3), got {tuple(points.shape)}")
    num_points = points.shape[1] // 2
    result = []
    for rows in points.detach().cpu().tolist():
        clicks = []
        for k, row in enumerate(rows):
            if max(row[0], row[1]) < 0:
                continue
            order = row[2] if len(row) > 2 else k
            clicks.append((order, k, Click(row[0], row[1], k < num_points)))
        result.append([c for _, _, c in sorted(clicks, key=lambda t: (t[0], t[1]))])
    return result


def valid_points_mask(points: torch.Tensor) -> torch.Tensor:
    """(B, 2N) bool: rows that hold a click (max(y, x) >= 0)."""
    return points[..., :2].max(dim=-1).values >= 0
