"""Runs that resume exactly: a training process killed with SIGKILL mid-epoch and resumed with
``ckpt_path=last`` ends with the weights and metrics of an uninterrupted run; the resumable loader
and the seeded items on their own."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from iseg.data.datamodule import InteractiveDataModule
from iseg.data.interactive_dataset import InteractiveDataset
from iseg.data.synthetic import SyntheticShapesSource
from iseg.data.transforms import coco_lvis_train_augmentator, coco_lvis_val_augmentator
from iseg.interaction.sampler import MultiPointSampler
from iseg.training.resume import find_last_checkpoint
from iseg.training.run import train
from tests.conftest import ROOT, TINY_OVERRIDES, compose_train_config

# 2 epochs of 3 steps; deterministic algorithms
RUN = [
    "data.train_dataset.epoch_len=12",
    "trainer.max_epochs=2",
    "trainer.deterministic=true",
    "threads=1",
]


def _metrics(output_dir: Path) -> dict[tuple[str, str], float]:
    """(metric, step) -> value of every value in the run's CSV log."""
    values = {}
    for file in output_dir.glob("csv/version_*/metrics.csv"):
        with file.open() as f:
            for row in csv.DictReader(f):
                for key, value in row.items():
                    if value and key not in ("epoch", "step"):
                        values[(key, row["step"])] = float(value)
    return values


def _net_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "step_checkpoints, saved, loader_state",
    [
        (1, (1, 4), {"epoch": 1, "batches": 1}),  # a step checkpoint after every step: last.ckpt is step 4's
        (0, (0, 3), {"epoch": 0, "batches": 3}),  # epoch checkpoints only: last.ckpt is epoch 0's end
    ],
    ids=["mid-epoch", "epoch-end"],
)
def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path, step_checkpoints, saved, loader_state):
    logs = tmp_path / "logs"
    run = [*RUN, f"callbacks.step_checkpoint.every_n_train_steps={step_checkpoints}"]
    # the run, killed by SIGKILL at global step 5 (epoch 1, second batch)
    killed = logs / "train" / "runs" / "killed"
    command = [sys.executable, "train.py", *TINY_OVERRIDES, *run, f"paths.log_dir={logs}", f"hydra.run.dir={killed}",
               "+callbacks.kill._target_=tests.resume_helpers.KillAt", "+callbacks.kill.step=5"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    # meanwhile the uninterrupted run (in its own log folder, so that it is no candidate for ckpt_path=last)
    straight = tmp_path / "straight"
    train(compose_train_config(straight, [*run, f"paths.log_dir={tmp_path / 'other'}"]))
    output, _ = process.communicate(timeout=300)
    assert process.returncode == -signal.SIGKILL, output[-3000:]
    last = killed / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert (state["epoch"], state["global_step"]) == saved
    assert state["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [loader_state]
    # what produced it: versions, commit and config travel in the checkpoint
    assert state["provenance"]["packages"]["torch"] == torch.__version__.split("+")[0]
    assert state["provenance"]["config"]["trainer"]["max_epochs"] == 2
    assert ("train_metric_states" in state) == (step_checkpoints == 1), "mid-epoch only: the running training means"

    # resumed with ckpt_path=last: picks the killed run's checkpoint (newer than the straight run's)
    assert find_last_checkpoint(logs, "train") == last
    resumed = logs / "train" / "runs" / "resumed"
    value = train(compose_train_config(resumed, [*run, f"paths.log_dir={logs}", "ckpt_path=last"]))

    final, expected = _net_state(resumed / "checkpoints" / "last.ckpt"), _net_state(straight / "checkpoints" / "last.ckpt")
    assert final.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(final[name], tensor), f"{name} differs from the uninterrupted run"
    straight_metrics, resumed_metrics = _metrics(straight), _metrics(resumed)
    assert resumed_metrics, "the resumed run logged nothing"
    for key, number in resumed_metrics.items():  # every value logged after the resume (epoch 1)
        assert number == straight_metrics[key], f"{key}: resumed {number} != uninterrupted {straight_metrics[key]}"
    assert ("train/loss_epoch", "5") in resumed_metrics, "epoch 1's training mean, over all its batches"
    assert ("val/noc90", "5") in resumed_metrics and ("train/loss_step", "5") in resumed_metrics
    assert value == straight_metrics[("val/noc90", "5")]


# ----------------------------------------------------------------------------------- the loader

CROP = (40, 56)


def _data(num_workers: int = 0, persistent: bool = False) -> InteractiveDataModule:
    sampler = MultiPointSampler(max_num_points=8)
    train = InteractiveDataset(SyntheticShapesSource(split="train", num_samples=8, image_size=(48, 64)), sampler,
                               coco_lvis_train_augmentator(CROP), epoch_len=12)
    val = InteractiveDataset(SyntheticShapesSource(split="val", num_samples=4, image_size=(48, 64)), sampler,
                             coco_lvis_val_augmentator(CROP))
    module = InteractiveDataModule(train, val, batch_size=2, num_workers=num_workers, seed=3,
                                   persistent_workers=persistent)
    module.setup("fit")
    return module


def _epochs(loader, count: int) -> list[list[torch.Tensor]]:
    return [[batch["images"] for batch in loader] for _ in range(count)]


def _equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_items_do_not_depend_on_workers_and_epochs_differ():
    reference = _epochs(_data().train_dataloader(), 2)
    assert not _equal(reference[0], reference[1]), "epoch 1 must not replay epoch 0"
    for workers, persistent in ((2, False), (2, True)):
        assert all(map(_equal, _epochs(_data(workers, persistent).train_dataloader(), 2), reference)), (workers, persistent)
    val = _data().val_dataloader()
    assert all(map(_equal, _epochs(val, 2)[1:], _epochs(val, 1))), "validation items are the same every time"


def test_loader_state_resumes_mid_epoch_and_at_the_epoch_end():
    reference = _epochs(_data().train_dataloader(), 3)
    loader = _data().train_dataloader()
    iterator = iter(loader)
    for _ in range(3):
        next(iterator)
    assert loader.state_dict() == {"epoch": 0, "batches": 3}
    resumed = _data().train_dataloader()
    resumed.load_state_dict(loader.state_dict())
    assert _equal(_epochs(resumed, 1)[0], reference[0][3:]), "the rest of epoch 0"
    assert _equal(_epochs(resumed, 1)[0], reference[1]), "then epoch 1"
    assert resumed.state_dict() == {"epoch": 1, "batches": 6}
    after_end = _data().train_dataloader()
    after_end.load_state_dict(resumed.state_dict())
    assert _equal(_epochs(after_end, 1)[0], reference[2]), "an epoch-end state continues with the next epoch"
    with pytest.raises(ValueError, match="not a ResumableDataLoader state"):
        after_end.load_state_dict({"step": 3})


def test_ckpt_path_last_names_the_newest_run_and_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="ckpt_path=last: no last.ckpt or interrupted.ckpt in any run of task 'train'"):
        find_last_checkpoint(tmp_path, "train")
    older = tmp_path / "train" / "runs" / "a" / "checkpoints" / "last.ckpt"
    newer = tmp_path / "train" / "multiruns" / "b" / "0" / "checkpoints" / "interrupted.ckpt"
    for path, mtime in ((older, 1_000_000), (newer, 2_000_000)):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        os.utime(path, (mtime, mtime))
    assert find_last_checkpoint(tmp_path, "train") == newer
    assert find_last_checkpoint(tmp_path, "train", exclude=tmp_path / "train" / "multiruns" / "b" / "0") == older


# ----------------------------------------------------------------------------------- W&B run id


def test_the_checkpoints_wandb_run_is_carried_unless_an_id_is_configured():
    from omegaconf import OmegaConf

    from iseg.training.resume import carry_wandb_run

    loggers = OmegaConf.create({"csv": {"_target_": "lightning.pytorch.loggers.CSVLogger"},
                                "wandb": {"_target_": "lightning.pytorch.loggers.WandbLogger", "id": None}})
    assert carry_wandb_run(loggers, {"wandb_run_id": "abc123"}) == "abc123"
    assert loggers.wandb.id == "abc123" and loggers.wandb.resume == "allow"
    configured = OmegaConf.create({"wandb": {"_target_": "lightning.pytorch.loggers.WandbLogger", "id": "mine"}})
    assert carry_wandb_run(configured, {"wandb_run_id": "abc123"}) is None and configured.wandb.id == "mine"
    assert carry_wandb_run(loggers, {}) is None, "a checkpoint of a run without W&B carries nothing"


@pytest.mark.slow
def test_a_resumed_run_continues_the_same_wandb_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    first = tmp_path / "first"
    train(compose_train_config(first, ["logger=wandb", "model.protocol_samples=1"]))
    (run_dir,) = (first / "wandb").glob("offline-run-*")
    run_id = run_dir.name.rsplit("-", 1)[1]
    checkpoint = torch.load(first / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["wandb_run_id"] == run_id

    train(compose_train_config(tmp_path / "second", [
        "logger=wandb", "model.protocol_samples=1", "trainer.max_epochs=2", f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}",
    ]))
    (resumed,) = (tmp_path / "second" / "wandb").glob("offline-run-*")
    assert resumed.name.endswith(f"-{run_id}"), (resumed.name, run_id)
