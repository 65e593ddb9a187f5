"""IOG's training configs end to end: both models train through train.py's config on synthetic, SBD
and PASCAL VOC fixture data (64 x 64 crops), and a trained checkpoint reloads as the IOG network."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import compose_train_config
from tests.sbd_files import write_sbd_dataset
from tests.voc_files import write_voc_dataset

COMMON = [
    "data.batch_size=2", "data.num_workers=0", "data.persistent_workers=false", "model.protocol_samples=1",
    "model.protocol.max_clicks=2", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
    "validate_before_training=false", "~callbacks.model_summary",
]


def _data(data: str, root: Path) -> list[str]:
    if data == "sbd":
        write_sbd_dataset(root, num_train=2, num_val=1, image_size=(64, 96))
        return ["data=sbd", f"data.root={root}", "data.val_dataset.epoch_len=2", "model.net.output_size=[64,64]"]
    if data == "pascalvoc":
        write_voc_dataset(root, num_train=2, num_val=1, image_size=(64, 96))
        return ["data=pascalvoc", f"data.root={root}", "data.val_dataset.epoch_len=2", "model.net.output_size=[64,64]"]
    return ["data.train_dataset.source.image_size=[64,96]", "data.val_dataset.source.image_size=[64,96]",
            "data.val_dataset.source.num_samples=2"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "data"), [("iog_refinement_resnet101", "pascalvoc"), ("iog_resnet101", "sbd")]
)
def test_iog_models_fast_dev_run(model, data, tmp_path):
    from iseg.training.run import train

    cfg = compose_train_config(tmp_path / "run", [f"model={model}", *_data(data, tmp_path / data), *COMMON, "trainer.fast_dev_run=true"], tiny=False)
    assert cfg.data.train_dataset.sampler.size == [64, 64]
    noc90 = train(cfg)  # one training and one validation batch, then the protocol (box + 1 click) on one object
    assert 1.0 <= noc90 <= 2.0


@pytest.mark.slow
def test_iog_trains_on_synthetic_and_reloads(tmp_path):
    from iseg.models.checkpoints import load_model
    from iseg.models.iog import IOGNetwork
    from iseg.training.run import train

    overrides = [*_data("synthetic", tmp_path), *COMMON, "trainer.max_epochs=1", "data.train_dataset.epoch_len=4",
                 "trainer.log_every_n_steps=1", "model=iog_resnet101"]
    train(compose_train_config(tmp_path, overrides, tiny=False))
    columns = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    for name in ("train/loss_coarse4_step", "train/loss_instance_step", "val/noc90", "val/miou1"):
        assert name in columns, f"{name} missing from {sorted(columns)}"
    net = load_model(tmp_path / "checkpoints" / "last.ckpt")
    assert type(net) is IOGNetwork and net.output_size == (64, 64) and not net.training


@pytest.mark.parametrize("model", ["iog_resnet101", "iog_refinement_resnet101"])
def test_iog_model_configs_instantiate(model, tmp_path):
    """As test_configs.py's check for click models: lr multipliers, optimizer groups, the adapter's inputs."""
    import torch
    from hydra.utils import instantiate

    from iseg.interaction.prompts import Click, InsideOutside

    cfg = compose_train_config(tmp_path, [f"model={model}"])  # the tiny synthetic config: 64 x 64 crops
    assert cfg.data.train_dataset.sampler._target_.endswith("IOGSampler") and "max_num_points" not in cfg.data.train_dataset.sampler
    module = instantiate(cfg.model)
    net = module.net
    assert type(net).__name__ == cfg.model.net._target_.rsplit(".", 1)[1]
    assert set(net.lr_multipliers()) == {n for n, _ in net.named_parameters()}
    optimizer = module.configure_optimizers()["optimizer"]
    assert len([p for g in optimizer.param_groups for p in g["params"]]) == len(list(net.parameters()))
    assert type(optimizer).__name__ == "SGD" and optimizer.defaults["momentum"] == 0.9
    prompts = module.inputs.encode([[InsideOutside.from_corners([(10, 12), (50, 40)], (30, 26)), Click(12.0, 14.0, False)]], "cpu")
    image, prev = torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)
    inputs = module.inputs(image, prev, prompts, step=1)
    assert inputs["image"].shape == (1, 5, 64, 64) and float(inputs["image"][:, :3].max()) > 1.0  # raw 0..255
    with torch.no_grad():
        out = net.eval()(**inputs)
    assert set(out) == {"instances", "coarse1", "coarse2", "coarse3", "coarse4"} and out["instances"].shape == (1, 1, 64, 64)


def test_iog_paper_experiment_composes(tmp_path):
    cfg = compose_train_config(tmp_path, ["experiment=iog_resnet101_pascal_sbd"], tiny=False)
    assert cfg.model.net.pretrained is True and cfg.model.net.backbone_lr_mult == 0.1
    assert cfg.model.optimizer.lr == 1e-7 and cfg.model.optimizer.weight_decay == 5e-4 and list(cfg.model.scheduler.milestones) == []
    assert cfg.trainer.max_epochs == 100 and cfg.data.batch_size == 5
    assert cfg.data.train_dataset.source._target_.endswith("PascalSBDSource")
    assert cfg.data.train_dataset.sampler.size == [512, 512] and cfg.data.train_dataset.augmentation._target_.endswith("iog_train_augmentator")
    refine = compose_train_config(tmp_path, ["experiment=iog_resnet101_pascal_sbd", "model=iog_refinement_resnet101"], tiny=False)
    assert refine.data.batch_size == 2 and refine.model.losses.coarse4.weight == 2.0 and refine.model.num_rounds == 2


def test_refinement_network_reuses_the_backbone_for_the_same_crop():
    """Correction clicks on one crop: eval/no-grad forwards reuse the backbone features, with equal outputs."""
    import torch

    from iseg.models.iog import IOGRefinementNetwork

    torch.manual_seed(0)
    net = IOGRefinementNetwork(output_size=(64, 64)).eval()
    image, guidance = torch.rand(1, 5, 64, 64) * 255, torch.rand(1, 2, 64, 64) * 255
    calls = []
    net.backbone.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        first = net(image, guidance)["instances"]
        second = net(image, guidance.flip(-1))["instances"]
        reference = net.named_outputs(net.round_maps(net.backbone(image), guidance.flip(-1)))["instances"]
        net(image + 1, guidance)  # another image: computed again
    assert len(calls) == 3 and torch.equal(second, reference) and not torch.equal(first, second)
    net.train()
    net(image.repeat(2, 1, 1, 1), guidance.repeat(2, 1, 1, 1))["instances"].sum().backward()  # training: no cache, gradients reach the backbone
    assert net.backbone.conv1.weight.grad is not None and len(calls) == 4
