"""FCFI training: the feedback loop's passes (gate, new_points), its losses, configs and end-to-end runs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from iseg.interaction.clicks import Click
from iseg.losses import LossTerm, MaskedNormalizedFocalLoss, NormalizedFocalLoss, WindowedLossTerm
from iseg.methods.interactive import InteractiveModule
from iseg.models.fcfi.inputs import FCFIInputs, first_click_new_points, new_click_points
from tests.conftest import CONF_DIR, compose_train_config

H, W, N = 24, 32, 4


class RecordingFeedbackNet(nn.Module):
    """Stand-in FCFI network (same call contract); predicts the left half, records every call."""

    with_prev_mask = True

    def default_inputs(self) -> FCFIInputs:
        return FCFIInputs()

    def __init__(self, logit: float = 8.0):
        super().__init__()
        self.logit = logit
        self.scale = nn.Parameter(torch.ones(1))
        self.head = nn.Conv2d(1, 1, 1)
        self.calls: list[dict] = []

    def forward(self, image, points, new_points, gate, is_training=None) -> dict:
        self.calls.append(
            {
                "training": self.training,
                "grad": torch.is_grad_enabled(),
                "is_training": is_training,
                "gate": gate,
                "prev": image[:, 3:].clone(),
                "points": points.clone(),
                "new_points": new_points.clone(),
            }
        )
        batch, _, height, width = image.shape
        logits = torch.full((batch, 1, height, width), -self.logit)
        logits[..., : width // 2] = self.logit
        logits = logits * self.scale
        feedback = torch.sigmoid(self.head(image[:, 3:]))
        window = torch.zeros(batch, 1, height // 4, width // 4)
        window[..., 1:4, 1:5] = 1.0
        return {
            "instances": logits,
            "instances_aux": logits * 2,
            "updated_feedback1": feedback,
            "updated_feedback2": feedback * 0.5,
            "valid_masks": window,
        }

    def lr_multipliers(self) -> dict[str, float]:
        return {"scale": 1.0, "head.weight": 0.1, "head.bias": 0.1}


def fcfi_losses(feedback1: float = 0.2, feedback2: float = 0.2) -> dict[str, LossTerm]:
    """FCFI's loss table as conf/method/fcfi.yaml builds it."""
    return {
        "instance": LossTerm(NormalizedFocalLoss(), "instances", 1.0),
        "feedback1": WindowedLossTerm(MaskedNormalizedFocalLoss(), "updated_feedback1", "valid_masks", feedback1),
        "feedback2": LossTerm(NormalizedFocalLoss(), "updated_feedback2", feedback2),
    }


def make_module(net: nn.Module, feedback1: float = 0.2, feedback2: float = 0.2, **kwargs) -> InteractiveModule:
    optimizer = lambda params: torch.optim.Adam(params, lr=1e-3)  # noqa: E731
    return InteractiveModule(net, optimizer, fcfi_losses(feedback1, feedback2), **kwargs)


def make_batch(gt_left_half: bool = False) -> dict[str, torch.Tensor]:
    gt = torch.zeros(2, 1, H, W)
    if gt_left_half:
        gt[..., : W // 2] = 1
    else:
        gt[:, :, 4:20, 12:28] = 1  # straddles the predicted half: errors of both signs
    points = torch.full((2, 2 * N, 3), -1.0)
    points[:, 0] = torch.tensor([10.0, 20.0, 0.0])
    points[1, 1] = torch.tensor([6.0, 14.0, 0.0])
    return {"images": torch.rand(2, 3, H, W), "instances": gt, "points": points}


def seed_drawing(num_iters: int, max_num_next_clicks: int = 3) -> int:
    """A seed whose first draw of rng.integers(0, max + 1), the number of passes, is ``num_iters``."""
    for seed in range(1000):
        if int(np.random.default_rng(seed).integers(0, max_num_next_clicks + 1)) == num_iters:
            return seed
    raise AssertionError("no seed found")


def added_click(before: torch.Tensor, after: torch.Tensor) -> list[tuple[int, int, int]]:
    """Per sample, the (y, x, label) of the slot a pass overwrote (label 1 positive / 0 negative)."""
    rows = []
    for b in range(before.shape[0]):
        (slot,) = (before[b] != after[b]).any(dim=1).nonzero().flatten().tolist()
        rows.append((int(after[b, slot, 0]), int(after[b, slot, 1]), int(slot < N)))
    return rows


@pytest.mark.parametrize("num_iters", [0, 1, 3])
def test_pass_structure_gates_and_new_points(num_iters):
    net = RecordingFeedbackNet()
    module = make_module(net)
    module._rng = np.random.default_rng(seed_drawing(num_iters))
    batch = make_batch()
    module.train()
    loss = module.training_step(batch, 0)
    assert loss.requires_grad and torch.isfinite(loss)
    calls = net.calls
    assert len(calls) == num_iters + 1
    # gate 0 on the first simulated pass, 1 after; the final pass: 1 iff a simulated pass ran
    want_gates = [0.0] + [1.0] * (num_iters - 1) + [1.0] if num_iters else [0.0]
    assert [c["gate"] for c in calls] == want_gates
    # the training-path window on every call (the reference never passes is_training=False)
    assert all(c["is_training"] is True for c in calls)
    assert all(not c["training"] and not c["grad"] for c in calls[:-1])
    assert calls[-1]["training"] and calls[-1]["grad"]
    # new_points: the sampler's first positive click, then the click added by the previous pass
    first = torch.tensor([[[10, 20, 1]], [[10, 20, 1]]])
    assert calls[0]["new_points"].dtype == torch.long and torch.equal(calls[0]["new_points"], first)
    for k in range(1, num_iters + 1):
        want = added_click(calls[k - 1]["points"], calls[k]["points"])
        assert calls[k]["new_points"].squeeze(1).tolist() == [list(r) for r in want]
        assert not torch.equal(calls[k]["prev"], torch.zeros_like(calls[k]["prev"]))  # probabilities fed back
    assert torch.equal(calls[0]["prev"], torch.zeros(2, 1, H, W))


def test_no_error_region_gives_the_centre_stand_in_point():
    """Perfect prediction: no click is added and new_points becomes (H//2-1, W//2-1, trunc(p))."""
    for logit, label in ((8.0, 0), (30.0, 1)):  # sigmoid(30) is exactly 1.0 in float32
        net = RecordingFeedbackNet(logit)
        module = make_module(net)
        module._rng = np.random.default_rng(seed_drawing(2))
        batch = make_batch(gt_left_half=True)
        module.training_step(batch, 0)
        assert torch.equal(net.calls[-1]["points"], batch["points"])
        centre = [[H // 2 - 1, W // 2 - 1, label]] * 2
        assert net.calls[1]["new_points"].squeeze(1).tolist() == centre
        assert net.calls[2]["new_points"].squeeze(1).tolist() == centre


def test_new_click_points_and_first_click_rows():
    probs = torch.zeros(3, 1, 10, 12)
    probs[2, 0, 4, 5] = 0.75
    clicks = [Click(3.0, 7.0, True), Click(8.0, 1.0, False), None]
    got = new_click_points(clicks, probs)
    assert got.dtype == torch.long and got.shape == (3, 1, 3)
    assert got.squeeze(1).tolist() == [[3, 7, 1], [8, 1, 0], [4, 5, 0]]
    with pytest.raises(ValueError, match="pred_probs must have shape"):
        new_click_points(clicks[:2], probs)
    points = torch.tensor([[[5.0, 6.0, 0.0], [-1.0, -1.0, -1.0]], [[-1.0, -1.0, -1.0], [2.0, 3.0, 0.0]]])
    # a sample without positive clicks keeps the padding coordinates, as in the reference
    assert first_click_new_points(points).squeeze(1).tolist() == [[5, 6, 1], [-1, -1, 1]]


def hand_masked_nfl(prob: np.ndarray, label: np.ndarray, mask: np.ndarray, alpha=0.5, gamma=2.0) -> list[float]:
    """-sum(alpha_t (1-p_t)^g log p_t) / sum((1-p_t)^g) over label != -1 and mask == 1.0, per sample."""
    out = []
    for b in range(prob.shape[0]):
        keep = (label[b] != -1) & (mask[b] == 1.0)
        p, y = prob[b][keep].astype(np.float64), label[b][keep]
        p_t = np.where(y > 0.5, p, 1 - p)
        a_t = np.where(y > 0.5, alpha, 1 - alpha)
        beta = (1 - p_t) ** gamma
        out.append(float(-(a_t * beta * np.log(p_t)).sum() / beta.sum()))
    return out


def test_masked_nfl_keeps_only_exact_ones_and_applies_a_second_sigmoid():
    gen = torch.Generator().manual_seed(0)
    probs = torch.rand(2, 1, 6, 7, generator=gen)  # probability maps, as FCFI's feedback outputs
    label = (torch.rand(2, 1, 6, 7, generator=gen) > 0.5).float()
    label[0, 0, 0, :3] = -1
    mask = torch.ones(2, 1, 6, 7)
    mask[:, :, 4:] = 0.0
    mask[0, 0, 1, 1] = 0.99999994  # largest float32 below 1: dropped
    mask[1, 0, 2, :] = 1.0 - 1e-3
    loss = MaskedNormalizedFocalLoss()(probs, label, mask)
    want = hand_masked_nfl(torch.sigmoid(probs).numpy(), label.numpy(), mask.numpy())
    np.testing.assert_allclose(loss.numpy(), want, rtol=1e-5)
    # with the window everywhere it is the plain NFL
    torch.testing.assert_close(MaskedNormalizedFocalLoss()(probs, label, torch.ones_like(mask)), NormalizedFocalLoss()(probs, label))
    # pixels outside the window get no gradient
    probs.requires_grad_(True)
    MaskedNormalizedFocalLoss()(probs, label, mask).sum().backward()
    assert probs.grad[:, :, 4:].abs().max() == 0 and probs.grad[0, 0, 1, 1] == 0 and probs.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="mask shape"):
        MaskedNormalizedFocalLoss()(probs, label, mask[:, :, :3])


def test_loss_terms_weights_and_no_aux_loss():
    net = RecordingFeedbackNet()
    module = make_module(net, feedback1=0.2, feedback2=0.3)
    batch = make_batch()
    outputs = net(torch.cat((batch["images"], torch.zeros(2, 1, H, W)), 1), batch["points"], first_click_new_points(batch["points"]), 0.0)
    total, logs = module.losses(outputs, batch["instances"], "train")
    gt = batch["instances"]
    window = torch.nn.functional.interpolate(outputs["valid_masks"], size=(H, W), mode="nearest")
    nfl = NormalizedFocalLoss()
    terms = {
        "train/loss_instance": nfl(outputs["instances"], gt).mean(),
        "train/loss_feedback1": MaskedNormalizedFocalLoss()(outputs["updated_feedback1"], gt, window).mean(),
        "train/loss_feedback2": nfl(outputs["updated_feedback2"], gt).mean(),
    }
    assert set(logs) == set(terms)  # no aux term although instances_aux is there
    for name, value in terms.items():
        torch.testing.assert_close(logs[name], value)
    want = terms["train/loss_instance"] + 0.2 * terms["train/loss_feedback1"] + 0.3 * terms["train/loss_feedback2"]
    torch.testing.assert_close(total, want)
    _, logs = make_module(net, feedback1=0.0).losses(outputs, gt, "val")
    assert set(logs) == {"val/loss_instance", "val/loss_feedback2"}
    missing = {"instance": LossTerm(NormalizedFocalLoss(), "instances"), "mask": LossTerm(NormalizedFocalLoss(), "masks")}
    with pytest.raises(KeyError, match=r"loss term on output 'masks': the network returned only \['instances'"):
        InteractiveModule(net, torch.optim.Adam, missing).losses(outputs, gt, "train")
    with pytest.raises(ValueError, match="losses is empty"):
        InteractiveModule(net, torch.optim.Adam, {"aux": None})


def test_optimizer_groups_follow_lr_multipliers():
    module = make_module(RecordingFeedbackNet())
    optimizer = module.configure_optimizers()
    groups = {g["lr_mult"]: {id(p) for p in g["params"]} for g in optimizer.param_groups}
    net = module.net
    assert groups[1.0] == {id(net.scale)} and groups[0.1] == {id(net.head.weight), id(net.head.bias)}
    assert {g["lr_mult"]: g["lr"] for g in optimizer.param_groups} == pytest.approx({1.0: 1e-3, 0.1: 1e-4})


@pytest.mark.parametrize(
    "model, weights, net_class",
    [("fcfi_hrnet18s", 0.2, "FCFIHRNetModel"), ("fcfi_resnet101", 1.0, "FCFIDeeplabModel")],
)
def test_model_configs(tmp_path, model, weights, net_class):
    cfg = compose_train_config(tmp_path, [f"model={model}"])
    assert cfg.model._target_ == "iseg.methods.interactive.InteractiveModule"
    assert cfg.model.losses.aux is None and cfg.model.inputs is None  # the network's own adapter
    assert cfg.model.losses.feedback1.weight == cfg.model.losses.feedback2.weight == weights
    assert cfg.model.losses.feedback1.loss.alpha == cfg.model.losses.instance.loss.alpha == 0.5
    assert cfg.model.net._target_.endswith(net_class)
    assert cfg.model.net.expansion_ratio == 0.3 and cfg.model.net.update_num == 1 and cfg.model.net.with_prev_mask


def test_hrnet_lr_groups_from_the_real_network(tmp_path):
    cfg = compose_train_config(tmp_path, ["model=fcfi_hrnet18s", "model.net.backbone_lr_mult=0.1"])
    module = instantiate(cfg.model)
    assert isinstance(module.inputs, FCFIInputs) and list(module.loss_terms) == ["instance", "feedback1", "feedback2"]
    assert sum(p.numel() for p in module.net.parameters()) == pytest.approx(10.16e6, rel=1e-3)  # spec §3.1
    optimizer = module.configure_optimizers()["optimizer"]
    names = {id(p): n for n, p in module.net.named_parameters()}
    by_mult = {g["lr_mult"]: {names[id(p)] for p in g["params"]} for g in optimizer.param_groups}
    # the reference applies the backbone multiplier to all of feature_extractor, FCFI modules included
    for module_name in ("correction_module", "fusion_module"):
        prefix = f"feature_extractor.{module_name}."
        assert any(n.startswith(prefix) for n in by_mult[0.1])
        assert not any(n.startswith(prefix) for n in by_mult[1.0])
    assert any(n.startswith("feature_extractor.conv3x3_ocr.") for n in by_mult[1.0])


def test_experiment_configs_compose(tmp_path):
    for name, data, batch, epochs, milestones, weight in (
        ("fcfi_hrnet18s_cocolvis", "cocolvis", 64, 230, [200, 220], 0.2),
        ("fcfi_resnet101_sbd", "sbd", 24, 220, [50, 100, 150], 1.0),
    ):
        if not (CONF_DIR / "data" / f"{data}.yaml").is_file():
            pytest.skip(f"conf/data/{data}.yaml is not there yet: experiment {name} cannot compose")
        cfg = compose_train_config(tmp_path, [f"experiment={name}", "data.root=/nowhere"], tiny=False)
        assert cfg.data.batch_size == batch and cfg.trainer.max_epochs == epochs
        assert list(cfg.model.scheduler.milestones) == milestones and cfg.model.optimizer.lr == 5e-4
        assert cfg.model.losses.feedback1.weight == cfg.model.losses.feedback2.weight == weight
        assert cfg.model.net.pretrained and cfg.model.net.backbone_lr_mult == 0.1
        for split in ("train_dataset", "val_dataset"):
            assert cfg.data[split].sampler.first_click_center is True
            assert cfg.data[split].augmentation._target_.startswith("iseg.data.transforms.coco_lvis_")
            assert list(cfg.data[split].augmentation.crop_size) == [320, 480]


def test_sample_without_positive_clicks_trains_like_the_reference():
    from iseg.models.fcfi.hrnet_model import FCFIHRNetModel

    net = FCFIHRNetModel(
        width=18, ocr_width=48, small=True, mid_ch=8, expansion_ratio=0.3, with_prev_mask=True,
        use_disks=True, norm_radius=5, use_leaky_relu=True, use_rgb_conv=False, with_aux_output=True,
    )
    module = make_module(net)
    module._rng = np.random.default_rng(seed_drawing(0))
    points = torch.full((2, 2 * N, 3), -1.0)
    points[0, 0] = torch.tensor([20.0, 30.0, 0.0])
    gt = torch.zeros(2, 1, 64, 96)  # sample 1: background only (keep_background_prob), no clicks
    gt[0, :, 10:40, 20:60] = 1
    loss = module.training_step({"images": torch.rand(2, 3, 64, 96), "instances": gt, "points": points}, 0)
    assert torch.isfinite(loss)


# ------------------------------------------------------------------ end to end (slow)


def _metric_columns(output_dir: Path) -> tuple[set[str], list[dict]]:
    (path,) = output_dir.glob("csv/version_*/metrics.csv")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return set().union(*(r.keys() for r in rows)), rows


@pytest.mark.slow
def test_fcfi_hrnet18s_trains_on_synthetic_data_and_reloads(tmp_path):
    from iseg.models.checkpoints import load_model
    from iseg.training.run import train

    cfg = compose_train_config(tmp_path, ["model=fcfi_hrnet18s", "+data.train_dataset.sampler.first_click_center=true"])
    value = train(cfg)
    assert 1.0 <= value <= 3.0
    columns, rows = _metric_columns(tmp_path)
    for name in ["train/loss_instance_step", "train/loss_feedback1_step", "train/loss_feedback2_step",
                 "val/loss_feedback1", "val/noc90", "val/miou1"]:
        assert name in columns, f"{name} missing from {sorted(columns)}"
    assert not any("aux" in c for c in columns)
    losses = [float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")]
    assert len(losses) == 2 and all(np.isfinite(losses))
    net = load_model(tmp_path / "checkpoints" / "last.ckpt")
    assert type(net).__name__ == "FCFIHRNetModel" and not net.training


def _write_data(data: str, root: Path) -> list[str]:
    """Format-faithful files for ``data`` under ``root``; returns the overrides that select them."""
    if data == "sbd":
        from tests.sbd_files import write_sbd_dataset

        write_sbd_dataset(root, num_train=4, num_val=2, image_size=(64, 96))
        return ["data=sbd", f"data.root={root}"]
    if data == "cocolvis":
        from tests.cocolvis_files import write_preprocessed_cocolvis

        write_preprocessed_cocolvis(root)
        return [
            "data=cocolvis", f"data.root={root}", "data.train_dataset.epoch_len=2",
            "data.train_dataset.min_object_area=20", "data.val_dataset.min_object_area=20",
        ]
    return ["data.train_dataset.source.image_size=[64,96]", "data.val_dataset.source.image_size=[64,96]",
            "data.val_dataset.source.num_samples=2"]


@pytest.mark.slow
@pytest.mark.parametrize("data", ["synthetic", "sbd", "cocolvis"])
@pytest.mark.parametrize("model", ["fcfi_hrnet18s", "fcfi_resnet101"])
def test_fcfi_models_fast_dev_run_on_each_training_set(model, data, tmp_path):
    from iseg.training.run import train

    overrides = [
        f"model={model}", *_write_data(data, tmp_path / data), "data.batch_size=2", "data.num_workers=0",
        "data.persistent_workers=false", "data.val_dataset.epoch_len=2",
        "data.train_dataset.augmentation.crop_size=[64,96]", "data.val_dataset.augmentation.crop_size=[64,96]",
        "+data.train_dataset.sampler.first_click_center=true",
        "model.protocol_samples=1", "model.protocol.max_clicks=2", "trainer.fast_dev_run=true",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "validate_before_training=false",
        "~callbacks.model_summary",
    ]
    if data == "synthetic":
        overrides.remove("data.val_dataset.epoch_len=2")
    cfg = compose_train_config(tmp_path / "run", overrides, tiny=False)
    noc90 = train(cfg)  # one training and one validation batch, then the 2-click protocol on one object
    assert 1.0 <= noc90 <= 2.0


def test_the_module_takes_the_network_s_own_adapter():
    from iseg.models.fcfi.hrnet_model import FCFIHRNetModel
    from iseg.models.inputs import ClickInputs

    net = FCFIHRNetModel(width=18, ocr_width=48, small=True, mid_ch=8, with_prev_mask=True, use_rgb_conv=False)
    assert isinstance(make_module(net).inputs, FCFIInputs)
    given = ClickInputs()
    assert make_module(RecordingFeedbackNet(), inputs=given).inputs is given
