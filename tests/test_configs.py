"""Every config group option composes, and every model config instantiates its network."""

from __future__ import annotations

import pytest
import torch
from hydra.errors import MissingConfigException
from hydra.utils import instantiate

from iseg.interaction.prompts import Click

from tests.conftest import CONF_DIR, compose_train_config

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if not p.stem.startswith("iog_"))
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
# click-model recipes (RITM, f-BRS, FCFI); S2M's preset is checked in tests/test_s2m_training.py
CLICK_EXPERIMENTS = [name for name in EXPERIMENTS if not name.startswith(("s2m_", "iog_"))]
TRAINERS = sorted(p.stem for p in (CONF_DIR / "trainer").glob("*.yaml"))
LOGGERS = sorted(p.stem for p in (CONF_DIR / "logger").glob("*.yaml"))


def test_groups_are_present():
    assert {"ritm_hrnet18s", "ritm_hrnet18", "ritm_hrnet32", "ritm_resnet34", "ritm_resnet50", "ritm_resnet101"} <= set(MODELS)
    assert {"default", "cpu", "gpu", "ddp"} <= set(TRAINERS)
    assert {"csv", "wandb"} <= set(LOGGERS)
    assert "ritm_hrnet18s_cocolvis" in EXPERIMENTS


@pytest.mark.parametrize("model", MODELS)
def test_model_config_instantiates(model, tmp_path):
    cfg = compose_train_config(tmp_path, [f"model={model}"])
    module = instantiate(cfg.model)
    net = module.net
    assert type(net).__name__ == cfg.model.net._target_.rsplit(".", 1)[1]
    # every parameter gets a learning-rate multiplier, and the optimizer covers them all once
    multipliers = net.lr_multipliers()
    assert set(multipliers) == {n for n, _ in net.named_parameters()}
    optimizer = module.configure_optimizers()["optimizer"]
    grouped = [p for g in optimizer.param_groups for p in g["params"]]
    assert len(grouped) == len(list(net.parameters())) == len({id(p) for p in grouped})
    for group in optimizer.param_groups:
        assert group["lr"] == pytest.approx(cfg.model.optimizer.lr * group["lr_mult"])
    # the method's adapter builds the inputs (RITM: image + previous mask and the (B, 2N, 3) clicks;
    # FCFI: also the newest click and the gate) from a click list
    prompts = module.inputs.encode([[Click(20.0, 30.0, True)]], "cpu", (64, 96))
    image, prev = torch.rand(1, 3, 64, 96), torch.zeros(1, 1, 64, 96)
    with torch.no_grad():
        out = net.eval()(**module.inputs(image, prev, prompts, step=0))
    assert out["instances"].shape == (1, 1, 64, 96)


@pytest.mark.parametrize("experiment", CLICK_EXPERIMENTS)
def test_experiment_composes(experiment, tmp_path):
    cfg = compose_train_config(tmp_path, [f"experiment={experiment}"], tiny=False)
    assert cfg.model.net.pretrained is True, "paper recipes start from ImageNet weights"
    # the reference values, whatever the data config adjusts for training from scratch
    assert cfg.model.net.backbone_lr_mult == 0.1 and cfg.model.net.maps_scale_init == 0.05
    assert cfg.model.optimizer.lr == 5e-4
    assert cfg.trainer.max_epochs >= 100  # f-BRS trains 120 epochs, RITM and FCFI 220-230
    assert list(cfg.data.train_dataset.augmentation.crop_size) == [320, 480]


@pytest.mark.parametrize("trainer", ["default", "cpu"])
def test_trainer_config_instantiates(trainer, tmp_path):
    cfg = compose_train_config(tmp_path, [f"trainer={trainer}", "trainer.channels_last=true"])
    trainer_obj = instantiate(cfg.trainer)
    assert trainer_obj.channels_last
    assert any(type(cb).__name__ == "ChannelsLast" for cb in trainer_obj.callbacks)


def test_ddp_trainer_config(tmp_path):
    cfg = compose_train_config(tmp_path, ["trainer=ddp"], tiny=False)
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.sync_batchnorm is False


def test_unknown_config_name_is_reported(tmp_path):
    with pytest.raises(MissingConfigException, match="ritm_hrnet99"):
        compose_train_config(tmp_path, ["model=ritm_hrnet99"])


def test_synthetic_data_adjusts_the_model_for_training_from_scratch(tmp_path):
    cfg = compose_train_config(tmp_path, tiny=False)
    assert cfg.model.net.pretrained is False
    assert cfg.model.net.backbone_lr_mult == 1.0 and cfg.model.net.maps_scale_init == 1.0
    module = instantiate(cfg.model)
    assert module.net.maps_transform[3].scale.item() == 1.0


def test_data_config_instantiates(tmp_path):
    cfg = compose_train_config(tmp_path)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["images"].shape == (4, 3, 64, 96)
    assert batch["points"].shape == (4, 48, 3)
    assert batch["instances"].shape == (4, 1, 64, 96)
