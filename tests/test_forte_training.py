"""Forte et al.'s training on the shared InteractiveModule: the adapter's training prompts, the
robot's rule as the simulation's click rule, the L1 terms, and train.py on synthetic and SBD data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from iseg.interaction.clicks import clicks_to_points
from iseg.interaction.forte_robot import ForteClickRobot, forte_next_click, forte_training_clicks
from iseg.interaction.iterative import simulate_iterative_clicks
from iseg.interaction.next_click import HostClickSampler
from iseg.interaction.prompts import Click
from iseg.models.forte import ForteNet
from iseg.models.forte.inputs import ForteInputs
from iseg.models.forte.losses import MaskedL1Loss
from tests.conftest import compose_train_config


def _gt(height: int = 32, width: int = 40) -> torch.Tensor:
    gt = torch.zeros(2, 1, height, width)
    gt[0, 0, 5:20, 8:30] = 1
    gt[1, 0, 10:28, 2:12] = 1
    gt[1, 0, 0:2, :] = -1
    return gt


def test_training_click_rule_is_the_robot_rule_per_sample() -> None:
    gt = _gt()
    probs = torch.zeros_like(gt)
    probs[0, 0, 5:20, 8:20] = 0.9  # a false-negative strip is left on sample 0
    probs[1] = (gt[1] == 1).float()  # sample 1 is perfect
    clicks = forte_training_clicks(probs, gt)
    expected = forte_next_click(gt[0, 0].numpy().astype(np.int8), probs[0, 0].numpy() > 0.49)
    assert clicks[0] == Click(float(expected.y), float(expected.x), True) and 20 <= clicks[0].x < 30
    assert clicks[1] is None  # no error: no click (the evaluation's bottom-right quirk is not trained)


def test_adapter_turns_sampler_points_into_pixels_and_appends_clicks() -> None:
    inputs = ForteInputs()
    points = clicks_to_points([[Click(3, 4, True), Click(7, 9, False)], [Click(1, 2, True)]])
    prompts = inputs.training_prompts({"points": points})
    assert prompts["click_pixels"].tolist() == [[[3, 4, 1], [7, 9, 0]], [[1, 2, 1], [-1, -1, -1]]]
    prompts = inputs.add_clicks(prompts, [None, Click(5.0, 6.0, False)], torch.zeros(2, 1, 16, 16), 1)
    assert prompts["click_pixels"][1, :2].tolist() == [[1, 2, 1], [5, 6, 0]]
    kwargs = inputs(torch.zeros(2, 3, 16, 16), torch.full((2, 1, 16, 16), 0.5), prompts, step=1)
    assert kwargs["trimap"][1, 0, 5, 6] == 1 and kwargs["trimap"][1, 1, 1, 2] == 1 and kwargs["trimap"].sum() == 4
    assert kwargs["click_maps"].shape == (2, 6, 16, 16) and kwargs["click_maps"][1, 3, 1, 2] == 1.0
    assert torch.equal(kwargs["prev_alpha"], torch.full((2, 1, 16, 16), 0.5))
    assert inputs.output_space == "probs" and inputs.probabilities({"instances": torch.tensor(0.25)}) == 0.25


def test_simulation_feeds_back_alpha_and_adds_the_rule_s_clicks(one_thread: None) -> None:
    torch.manual_seed(0)
    net, inputs, gt = ForteNet(), ForteInputs(), _gt()
    images = torch.rand(2, 3, 32, 40)
    prompts = {"click_pixels": torch.tensor([[[10.0, 15.0, 1.0]], [[15.0, 5.0, 1.0]]])}
    seen = []

    def rule(probs, labels, rng, thresh):
        clicks = forte_training_clicks(probs, labels, rng, thresh)
        seen.append((probs.clone(), clicks))
        return clicks

    net.train()
    prev, prompts = simulate_iterative_clicks(net, inputs, images, gt, prompts, 2, HostClickSampler(np.random.default_rng(0), rule=rule))
    assert net.training and len(seen) == 2
    torch.testing.assert_close(prev, seen[-1][0])  # the last pass's alpha is fed back as is (no sigmoid)
    assert float(prev.min()) >= 0 and float(prev.max()) <= 1
    for b in range(2):
        added = [c for _, clicks in seen for c in [clicks[b]] if c is not None]
        rows = prompts["click_pixels"][b][prompts["click_pixels"][b, :, 0] >= 0].tolist()
        assert rows[1:] == [[c.y, c.x, float(c.is_positive)] for c in added]


def test_masked_l1_and_gradient_through_the_raw_output() -> None:
    loss = MaskedL1Loss()
    pred = torch.tensor([[[[0.2, 0.9], [0.5, 3.0]]]])
    label = torch.tensor([[[[0.0, 1.0], [-1.0, 1.0]]]])
    torch.testing.assert_close(loss(pred, label), torch.tensor([(0.2 + 0.1 + 2.0) / 3]))
    torch.manual_seed(0)
    net = ForteNet()
    with torch.no_grad():
        net.decoder.conv_up4[4].bias.fill_(-5.0)  # every pixel clamped to 0: no gradient through the alpha
    inputs = ForteInputs()
    kwargs = inputs(torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32), {"click_pixels": torch.tensor([[[9.0, 9.0, 1.0]]])}, 0)
    out = net(**kwargs)
    label = torch.ones(1, 1, 32, 32)
    loss(out["instances_raw"], label).mean().backward()
    assert float(net.decoder.conv_up4[4].bias.grad.abs()) > 0


def test_model_config_selects_forte_parts(tmp_path) -> None:
    """The parts the module gets (the network itself is built by the slow train.py test)."""
    cfg = compose_train_config(tmp_path, ["model=forte_resnet50"])
    assert cfg.model.net._target_ == "iseg.models.forte.ForteNet" and cfg.model.inputs is None
    losses = {name: term for name, term in instantiate(cfg.model.losses).items() if term is not None}
    assert list(losses) == ["alpha", "alpha_raw"] and all(isinstance(t.loss, MaskedL1Loss) for t in losses.values())
    assert [t.output for t in losses.values()] == ["instances", "instances_raw"]
    assert instantiate(cfg.model.click_rule).func is forte_training_clicks
    assert list(cfg.model.validation_views) == ["forte_demo"]
    assert isinstance(instantiate(cfg.model.validation_robot), ForteClickRobot) and cfg.model.protocol.pred_thr < 0.5


@pytest.mark.slow
@pytest.mark.parametrize("data", ["synthetic", "sbd"])
def test_train_py_trains_forte_and_reloads(data: str, tmp_path) -> None:
    from iseg.models.checkpoints import load_model
    from iseg.training.run import train

    overrides = ["model=forte_resnet50"]
    if data == "sbd":
        from tests.sbd_files import write_sbd_dataset

        write_sbd_dataset(tmp_path / "sbd", num_train=4, num_val=2, image_size=(64, 96))
        overrides += [
            "data=sbd", f"data.root={tmp_path / 'sbd'}", "data.batch_size=2", "data.num_workers=0",
            "data.persistent_workers=false", "data.val_dataset.epoch_len=2",
            "data.train_dataset.augmentation.crop_size=[64,96]", "data.val_dataset.augmentation.crop_size=[64,96]",
            "model.protocol_samples=2", "model.protocol.max_clicks=3", "trainer.max_epochs=1",
            "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1",
            "validate_before_training=false", "~callbacks.model_summary",
        ]
    value = train(compose_train_config(tmp_path / "run", overrides, tiny=data != "sbd"))
    assert 1.0 <= value <= 3.0
    rows = (tmp_path / "run" / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert "train/loss_alpha_step" in header and "train/loss_alpha_raw_step" in header and "val/noc90" in header
    column = header.index("train/loss_step")
    losses = [float(r.split(",")[column]) for r in rows[1:] if r.split(",")[column]]
    assert losses and all(np.isfinite(losses))
    net = load_model(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert isinstance(net, ForteNet) and not net.training
