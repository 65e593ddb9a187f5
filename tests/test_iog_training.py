"""IOG's training configs end to end: both models train through train.py's config on synthetic, SBD
and PASCAL VOC fixture data (64 x 64 crops), and a trained checkpoint reloads as the IOG network."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import compose_train_config
from tests.sbd_files import write_sbd_dataset
from tests.voc_files import write_voc_dataset

pytestmark = pytest.mark.slow
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


@pytest.mark.parametrize(
    ("model", "data"), [("iog_refinement_resnet101", "pascalvoc"), ("iog_resnet101", "sbd")]
)
def test_iog_models_fast_dev_run(model, data, tmp_path):
    from iseg.training.run import train

    cfg = compose_train_config(tmp_path / "run", [f"model={model}", *_data(data, tmp_path / data), *COMMON, "trainer.fast_dev_run=true"], tiny=False)
    assert cfg.data.train_dataset.sampler.size == [64, 64]
    noc90 = train(cfg)  # one training and one validation batch, then the protocol (box + 1 click) on one object
    assert 1.0 <= noc90 <= 2.0


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
