"""The training function end to end on tiny synthetic data: metrics, checkpoints, resume, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from iseg.inference.predictor import Predictor
from iseg.interaction.clicks import Click
from iseg.models.checkpoints import load_model
from iseg.training.compile import CompileNetwork
from iseg.training.run import train
from tests.conftest import compose_train_config


def _metrics_rows(output_dir: Path) -> list[dict]:
    files = list(output_dir.glob("csv/version_*/metrics.csv"))
    assert len(files) == 1, f"expected one CSV log, found {files}"
    with files[0].open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("run")
    cfg = compose_train_config(output_dir, ["trainer.max_epochs=2"])
    value = train(cfg)
    return output_dir, cfg, value


def test_train_returns_the_monitored_metric(trained_run):
    _, _, value = trained_run
    assert 1.0 <= value <= 3.0  # NoC@90 over a 3-click protocol


def test_train_logs_losses_iou_and_protocol_metrics(trained_run):
    output_dir, _, _ = trained_run
    rows = _metrics_rows(output_dir)
    columns = set().union(*(r.keys() for r in rows))
    for name in ["train/loss_step", "train/loss_instance_step", "train/loss_aux_step", "train/iou_step",
                 "val/loss", "val/iou", "val/noc85", "val/noc90", "val/nof85", "val/miou1", "val/miou3"]:
        assert name in columns, f"{name} missing from {sorted(columns)}"
    losses = [float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")]
    assert len(losses) == 4 and all(np.isfinite(losses))
    epochs = {r["epoch"] for r in rows if r.get("val/noc90")}
    assert epochs == {"0", "1"}


def test_checkpoint_loads_through_the_public_loader(trained_run):
    output_dir, _, _ = trained_run
    last = output_dir / "checkpoints" / "last.ckpt"
    assert last.is_file()
    net = load_model(last)
    assert type(net).__name__ == "HRNetModel" and not net.training
    state = torch.load(last, map_location="cpu", weights_only=False)["state_dict"]
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, state[f"net.{name}"]), name
    predictor = Predictor.from_checkpoint(str(last), device="cpu")
    image = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    predictor.set_image(image)
    probs = predictor.add(Click(30, 40, True))
    assert probs.shape == (64, 96) and 0.0 <= probs.min() <= probs.max() <= 1.0


def test_resume_continues_the_step_count(trained_run, tmp_path):
    output_dir, _, _ = trained_run
    first = torch.load(output_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert first["epoch"] == 1 and first["global_step"] == 4, "last.ckpt must hold the last epoch"
    cfg = compose_train_config(tmp_path, ["trainer.max_epochs=3", f"ckpt_path={output_dir / 'checkpoints' / 'last.ckpt'}"])
    train(cfg)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["epoch"] == 2 and state["global_step"] == 6


def test_optimizer_applies_the_reference_lr_multipliers(tmp_path):
    cfg = compose_train_config(tmp_path, ["model.net.backbone_lr_mult=0.1"])
    module = instantiate(cfg.model)
    optimizer = module.configure_optimizers()["optimizer"]
    by_mult = {g["lr_mult"]: {id(p) for p in g["params"]} for g in optimizer.param_groups}
    names = {id(p): n for n, p in module.net.named_parameters()}
    slow = {names[i] for i in by_mult[0.1]}
    fast = {names[i] for i in by_mult[1.0]}
    assert "feature_extractor.cls_head.weight" in slow and "feature_extractor.aux_head.0.weight" in slow
    assert "maps_transform.0.weight" in fast and "feature_extractor.conv3x3_ocr.0.weight" in fast


def test_non_finite_loss_stops_with_a_clear_error(tmp_path):
    cfg = compose_train_config(tmp_path)
    module = instantiate(cfg.model)
    batch = {
        "images": torch.full((2, 3, 32, 48), float("nan")),
        "points": torch.tensor([[[10.0, 10.0, 100.0], [-1.0, -1.0, -1.0]]] * 2),
        "instances": torch.zeros(2, 1, 32, 48),
    }
    with pytest.raises(FloatingPointError, match=r"non-finite train loss .*global step 0"):
        module.training_step(batch, 0)


def test_bf16_mixed_precision_and_channels_last_from_the_trainer_config(tmp_path):
    cfg = compose_train_config(
        tmp_path, ["trainer.precision=bf16-mixed", "trainer.channels_last=true"]
    )
    train(cfg)
    rows = _metrics_rows(tmp_path)
    losses = [float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")]
    assert losses and all(np.isfinite(losses))


@pytest.mark.slow
def test_compiled_network_trains_to_the_weights_of_the_plain_network(tmp_path):
    """``trainer.compile`` runs the network through torch.compile (here dynamo with the eager backend,
    which executes the captured graphs op for op): the same training steps give the plain network's
    weights exactly, under the same parameter names."""
    from torch._dynamo.utils import counters

    cfg = compose_train_config(tmp_path, ["trainer.compile={backend:eager}"])
    trainer = instantiate(cfg.trainer, logger=False)
    (compile_callback,) = [c for c in trainer.callbacks if isinstance(c, CompileNetwork)]
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    batches = [next(iter(datamodule.train_dataloader()))] * 2

    def trained(compiled: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        module = instantiate(cfg.model)
        if compiled:
            compile_callback.setup(trainer, module, "fit")
        optimizer = module.configure_optimizers()["optimizer"]
        for step, batch in enumerate(batches):
            loss = module.training_step(batch, step)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return module.state_dict()

    torch._dynamo.reset()
    counters.clear()
    compiled = trained(compiled=True)
    assert counters["stats"]["unique_graphs"] >= 1
    plain = trained(compiled=False)
    assert compiled.keys() == plain.keys()
    for name, tensor in plain.items():
        assert torch.equal(compiled[name], tensor), name


@pytest.mark.parametrize(
    ("override", "message"),
    [("trainer.compile={bogus:1}", r"trainer\.compile\.bogus: not a torch\.compile argument"),
     ("trainer.compile={mode:fastest}", r"trainer\.compile: Unrecognized mode=fastest")],
)
def test_compile_settings_that_torch_does_not_know_are_named(tmp_path, override, message):
    cfg = compose_train_config(tmp_path, [override])
    with pytest.raises((ValueError, InstantiationException), match=message):
        train(cfg)
