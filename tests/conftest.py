"""Shared test fixtures and paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"

torch.set_num_threads(min(2, torch.get_num_threads()))


def require_shared_dataset(name: str) -> Path:
    """Path of a real evaluation set under ../shared/data, or skip the test saying why."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real dataset {name} not found at {path} (../shared/data is absent on this machine)")
    return path


CONF_DIR = ROOT / "conf"

# A tiny but complete training configuration: small images, few samples, short protocol.
TINY_OVERRIDES = [
    "data.batch_size=4",
    "data.num_workers=0",
    "data.persistent_workers=false",
    "data.train_dataset.source.image_size=[64,96]",
    "data.train_dataset.epoch_len=8",
    "data.train_dataset.augmentation.crop_size=[64,96]",
    "data.val_dataset.source.image_size=[64,96]",
    "data.val_dataset.source.num_samples=4",
    "data.val_dataset.augmentation.crop_size=[64,96]",
    "data.train_dataset.min_object_area=20",
    "data.val_dataset.min_object_area=20",
    "model.protocol_samples=2",
    "model.protocol.max_clicks=3",
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
    "validate_before_training=false",
    "~callbacks.model_summary",
]


def compose_train_config(output_dir: Path, overrides: list[str] = (), tiny: bool = True):
    """The train.py config as Hydra composes it, with outputs under ``output_dir``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[*(TINY_OVERRIDES if tiny else []), *overrides, f"hydra.run.dir={output_dir}"],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.runtime.cwd = str(ROOT)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture
def one_thread():
    """One intra-op thread: on a small shared CPU, two threads of a 400-px HRNet contend badly."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
