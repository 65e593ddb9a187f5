"""The exported graph's click encoding (no input-dependent control flow) gives the maps of the
running-minimum encoder bit for bit: disks and distance maps, empty slots, any click count."""

from __future__ import annotations

import pytest
import torch

from iseg.interaction.encoding import encode_clicks, encode_clicks_graph


@pytest.mark.parametrize("use_disks, radius", [(True, 5.0), (False, 260.0)])
@pytest.mark.parametrize("num_points", [1, 4])
def test_graph_encoding_equals_the_loop(use_disks: bool, radius: float, num_points: int) -> None:
    generator = torch.Generator().manual_seed(num_points)
    points = torch.rand(3, 2 * num_points, 3, generator=generator) * 70 - 5  # some rows off the image
    points[0, -1] = -1.0  # an empty negative slot
    points[2] = -1.0  # a sample without clicks
    expected = encode_clicks(points, 50, 70, radius, use_disks, spatial_scale=0.5)
    got = encode_clicks_graph(points, 50, 70, radius, use_disks, spatial_scale=0.5)
    assert torch.equal(got, expected)
    assert expected[0].sum() > 0 and (expected[2] == (0.0 if use_disks else torch.tanh(torch.tensor(2e3)))).all()
