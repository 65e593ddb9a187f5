"""simulate_iterative_clicks: eval-mode, gradient-free passes that feed back probabilities and add clicks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from iseg.interaction.iterative import simulate_iterative_clicks
from iseg.interaction.next_click import HostClickSampler, sample_next_points
from iseg.models.fcfi.inputs import FCFIInputs, new_click_points
from iseg.models.inputs import ClickInputs

RITM = ClickInputs(prev_mask=True)


def simulate(net, images, prev, gt, points, num_iters, rng, inputs=RITM):
    """The simulation on the click layout alone; returns (probabilities, points)."""
    sampler = HostClickSampler(rng)
    prev, prompts = simulate_iterative_clicks(net, inputs, images, gt, {"points": points}, num_iters, sampler, prev_masks=prev)
    return prev, prompts["points"]


class FakeNet(nn.Module):
    """Predicts the left half of the image as object; records what each call saw."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(1)
        self.calls: list[dict] = []

    def forward(self, image: torch.Tensor, points: torch.Tensor, **extra) -> dict[str, torch.Tensor]:
        net_input = image
        self.calls.append(
            {
                "training": self.training,
                "grad": torch.is_grad_enabled(),
                "input": net_input.clone(),
                "points": points.clone(),
                "extra": extra,
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
    prev, new_points = simulate(net, images, None, gt, points, 3, np.random.default_rng(0))
    assert len(net.calls) == 3
    assert all(not c["training"] and not c["grad"] for c in net.calls)
    assert net.training is start_training and net.bn.training is start_training
    assert not prev.requires_grad and prev.shape == (2, 1, 24, 32)
    torch.testing.assert_close(prev, torch.sigmoid(net(torch.cat((images, prev), 1), points)["instances"]))


def test_feedback_and_click_slots():
    images, gt, points = batch()
    net = FakeNet()
    prev, new_points = simulate(net, images, None, gt, points, 2, np.random.default_rng(5))
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
    prev, same = simulate(net, images, None, gt, points, 0, np.random.default_rng(0))
    assert net.calls == [] and same is points and torch.equal(prev, torch.zeros(2, 1, 24, 32))
    start = torch.full((2, 1, 24, 32), 0.25)
    simulate(net, images, start, gt, points, 1, np.random.default_rng(0))
    assert torch.equal(net.calls[0]["input"][:, 3:], start)
    net.calls.clear()
    simulate(net, images, None, gt, points, 1, np.random.default_rng(0), inputs=ClickInputs(prev_mask=False))
    assert net.calls[0]["input"].shape == (2, 3, 24, 32)


def test_mode_restored_when_the_net_fails():
    class Broken(FakeNet):
        def forward(self, image, points):
            raise RuntimeError("boom")

    images, gt, points = batch()
    net = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        simulate(net, images, None, gt, points, 1, np.random.default_rng(0))
    assert net.training


def test_bad_arguments_are_reported():
    images, gt, points = batch()
    with pytest.raises(ValueError, match="num_iters"):
        simulate(FakeNet(), images, None, gt, points, -1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="prev_masks must have shape"):
        simulate(FakeNet(), images, torch.zeros(2, 1, 5, 5), gt, points, 1, np.random.default_rng(0))


def test_an_adapter_with_more_inputs_keeps_the_same_loop():
    """FCFI's adapter: the same clicks and probabilities as RITM's, plus gate 0 on pass 1 then 1, and
    new_points = the sampler's first click, then each pass's added click."""
    images, gt, points = batch()
    want_prev, want_points = simulate(FakeNet(), images, None, gt, points, 3, np.random.default_rng(4))
    net = FakeNet().train()
    fcfi = FCFIInputs()
    prev, prompts = simulate_iterative_clicks(
        net, fcfi, images, gt, fcfi.training_prompts({"points": points}), 3, HostClickSampler(np.random.default_rng(4))
    )
    assert net.training and torch.equal(prev, want_prev) and torch.equal(prompts["points"], want_points)
    assert [c["extra"]["gate"] for c in net.calls] == [0.0, 1.0, 1.0]
    assert all(c["extra"]["is_training"] is True for c in net.calls)
    assert net.calls[0]["extra"]["new_points"].tolist() == [[[10, 20, 1]], [[10, 20, 1]]]
    n = points.shape[1] // 2
    for k in (1, 2):  # pass k+1 sees the click pass k added, as a long (y, x, label) row
        after = net.calls[k]["points"]
        for b in range(2):
            row = net.calls[k]["extra"]["new_points"][b, 0].tolist()
            slot = n - k if row[2] == 1 else 2 * n - k
            assert after[b, slot].tolist() == [float(row[0]), float(row[1]), float(k)]
    assert prompts["new_points"].dtype == torch.long


def test_new_click_points_use_the_stand_in_point_without_a_click():
    probs = torch.zeros(2, 1, 10, 12)
    probs[1, 0, 4, 5] = 1.0
    from iseg.interaction.prompts import Click

    rows = new_click_points([Click(3.7, 2.2, False), None], probs)
    assert rows.tolist() == [[[3, 2, 0]], [[4, 5, 1]]]  # (H//2-1, W//2-1) labelled with the truncated probability
