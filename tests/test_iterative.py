"""simulate_iterative_clicks: eval-mode, gradient-free passes that feed back probabilities and add clicks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from iseg.interaction.iterative import simulate_iterative_clicks
from iseg.interaction.next_click import sample_next_points


class FakeNet(nn.Module):
    """Predicts the left half of the image as object; records what each call saw."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(1)
        self.calls: list[dict] = []

    def forward(self, net_input: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls.append(
            {
                "training": self.training,
                "grad": torch.is_grad_enabled(),
                "input": net_input.clone(),
                "points": points.clone(),
            }
        )
        logits = torch.full_like(net_input[:, :1], -8.0)
        logits[..., : net_input.shape[-1] // 2] = 8.0
        return {"instances": self.bn(logits) * 0 + logits, "instances_aux": logits}


def batch():
    images = torch.rand(2, 3, 24, 32)
    gt = torch.zeros(2, 1, 24, 32)
    gt[:, :, 4:20, 12:28] = 1  # object straddles the predicted half: both FN and FP exist
    points = torch.full((2, 8, 3), -1.0)
    points[:, 0] = torch.tensor([10.0, 20.0, 100.0])
    return images, gt, points


@pytest.mark.parametrize("start_training", [True, False])
def test_passes_run_in_eval_mode_without_grad_and_restore_mode(start_training):
    images, gt, points = batch()
    net = FakeNet().train(start_training)
    prev, new_points = simulate_iterative_clicks(net, images, None, gt, points, 3, np.random.default_rng(0))
    assert len(net.calls) == 3
    assert all(not c["training"] and not c["grad"] for c in net.calls)
    assert net.training is start_training and net.bn.training is start_training
    assert not prev.requires_grad and prev.shape == (2, 1, 24, 32)
    torch.testing.assert_close(prev, torch.sigmoid(net(torch.cat((images, prev), 1), points)["instances"]))


def test_feedback_and_click_slots():
    images, gt, points = batch()
    net = FakeNet()
    prev, new_points = simulate_iterative_clicks(net, images, None, gt, points, 2, np.random.default_rng(5))
    assert net.calls[0]["input"].shape == (2, 4, 24, 32)
    assert torch.equal(net.calls[0]["input"][:, :3], images)
    assert torch.equal(net.calls[0]["input"][:, 3:], torch.zeros(2, 1, 24, 32))
    assert torch.equal(net.calls[1]["input"][:, 3:], prev)  # pass 2 sees pass 1's probabilities
    assert torch.equal(net.calls[0]["points"], points)
    # same rng stream, same rule: pass i writes click i into slot N-i or 2N-i
    rng = np.random.default_rng(5)
    want = sample_next_points(prev, gt, points, 1, rng)
    assert torch.equal(net.calls[1]["points"], want)
    want = sample_next_points(prev, gt, want, 2, rng)
    assert torch.equal(new_points, want)
    added = (new_points != points).any(dim=2)
    assert added.sum(dim=1).tolist() == [2, 2]
    assert set(new_points[:, :, 2][added].tolist()) <= {1.0, 2.0}
    assert torch.equal(new_points[:, 0], points[:, 0])  # the sampler's click is kept


def test_zero_iterations_and_given_prev_masks():
    images, gt, points = batch()
    net = FakeNet()
    prev, same = simulate_iterative_clicks(net, images, None, gt, points, 0, np.random.default_rng(0))
    assert net.calls == [] and same is points and torch.equal(prev, torch.zeros(2, 1, 24, 32))
    start = torch.full((2, 1, 24, 32), 0.25)
    simulate_iterative_clicks(net, images, start, gt, points, 1, np.random.default_rng(0))
    assert torch.equal(net.calls[0]["input"][:, 3:], start)
    net.calls.clear()
    simulate_iterative_clicks(net, images, None, gt, points, 1, np.random.default_rng(0), with_prev_mask=False)
    assert net.calls[0]["input"].shape == (2, 3, 24, 32)


def test_mode_restored_when_the_net_fails():
    class Broken(FakeNet):
        def forward(self, net_input, points):
            raise RuntimeError("boom")

    images, gt, points = batch()
    net = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        simulate_iterative_clicks(net, images, None, gt, points, 1, np.random.default_rng(0))
    assert net.training


def test_bad_arguments_are_reported():
    images, gt, points = batch()
    with pytest.raises(ValueError, match="num_iters"):
        simulate_iterative_clicks(FakeNet(), images, None, gt, points, -1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="prev_masks must have shape"):
        simulate_iterative_clicks(FakeNet(), images, torch.zeros(2, 1, 5, 5), gt, points, 1, np.random.default_rng(0))


def test_call_net_and_on_clicks_hooks_keep_the_same_loop():
    """A custom call per pass (FCFI's extra inputs) sees the same inputs and yields the same clicks."""
    images, gt, points = batch()
    plain_net = FakeNet()
    want_prev, want_points = simulate_iterative_clicks(plain_net, images, None, gt, points, 3, np.random.default_rng(4))
    net = FakeNet().train()
    passes, seen = [], []

    def call_net(net_input, pts, pass_index):
        passes.append((pass_index, net.training, torch.is_grad_enabled()))
        return net(net_input, pts)

    def on_clicks(clicks, probs):
        seen.append((clicks, probs))

    prev, new_points = simulate_iterative_clicks(
        net, images, None, gt, points, 3, np.random.default_rng(4), call_net=call_net, on_clicks=on_clicks
    )
    assert passes == [(1, False, False), (2, False, False), (3, False, False)] and net.training
    assert torch.equal(prev, want_prev) and torch.equal(new_points, want_points)
    n = points.shape[1] // 2
    assert len(seen) == 3
    for k, (clicks, probs) in enumerate(seen, start=1):
        before = net.calls[k - 1]["points"]
        after = net.calls[k]["points"] if k < 3 else new_points
        for b, click in enumerate(clicks):
            slot = n - k if click.is_positive else 2 * n - k
            assert after[b, slot].tolist() == [click.y, click.x, float(k)] and not torch.equal(before[b], after[b])
        assert torch.equal(probs, net.calls[k]["input"][:, 3:] if k < 3 else prev)
