"""The click encoder: same maps as a direct per-slot formula, and a graph torch.compile traces whole."""

from __future__ import annotations

import pytest
import torch

from iseg.interaction.encoding import encode_clicks


def direct_encoding(points: torch.Tensor, height: int, width: int, radius: float, use_disks: bool) -> torch.Tensor:
    """The reference op order on a (B, 2N, H, W) tensor: masked d^2, minimum per polarity."""
    rows = torch.arange(height, dtype=torch.float32).view(1, 1, height, 1)
    cols = torch.arange(width, dtype=torch.float32).view(1, 1, 1, width)
    dy, dx = rows - points[:, :, 0, None, None], cols - points[:, :, 1, None, None]
    if not use_disks:
        dy, dx = dy / radius, dx / radius
    d2 = dy * dy + dx * dx
    valid = (points[:, :, :2].max(dim=2).values >= 0).view(*points.shape[:2], 1, 1)
    d2 = torch.where(valid, d2, torch.full_like(d2, 1e6))
    n = points.shape[1] // 2
    d2 = torch.stack((d2[:, :n].amin(dim=1), d2[:, n:].amin(dim=1)), dim=1)
    return (d2 <= radius**2).float() if use_disks else torch.tanh(2 * torch.sqrt(d2))


def random_points(seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    points = torch.rand(3, 8, 3, generator=gen) * torch.tensor([30.0, 40.0, 5.0])
    points[torch.rand(3, 8, generator=gen) < 0.5] = -1.0  # empty slots, some slots empty in every sample
    points[:, 3] = -1.0
    return points


@pytest.mark.parametrize("use_disks,radius", [(True, 5.0), (False, 260.0)])
def test_encoding_matches_the_direct_formula(use_disks, radius):
    for seed in range(3):
        points = random_points(seed)
        got = encode_clicks(points, 30, 40, radius, use_disks)
        assert torch.equal(got, direct_encoding(points, 30, 40, radius, use_disks))


def test_encoder_compiles_without_graph_breaks():
    """No host read (e.g. a test of whether a slot is used anywhere) inside the encoder."""
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(encode_clicks)(random_points(0), 30, 40, 5.0, True)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.slow
def test_hrnet18s_network_traces_in_one_graph():
    """The whole RITM HRNet18s forward (encoder, backbone, OCR head) has no graph break."""
    from iseg.models.hrnet_model import HRNetModel
    from tests.test_models_hrnet import ITER_M

    net = HRNetModel(width=18, ocr_width=48, small=True, **ITER_M).eval()
    points = torch.tensor([[[20.0, 30.0, 0.0], [-1.0, -1.0, -1.0], [5.0, 5.0, 1.0], [-1.0, -1.0, -1.0]]])
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(net)(torch.rand(1, 4, 64, 96), points)
    assert explanation.graph_break_count == 0, explanation.break_reasons
