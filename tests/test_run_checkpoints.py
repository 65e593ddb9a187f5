"""Checkpoints a run can rely on: atomic writes, one on Ctrl-C / SIGTERM, short resume diagnoses."""

from __future__ import annotations

import errno
import logging
import os
import signal

import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback

from iseg.models.checkpoints import CheckpointError
from iseg.runtime import instantiate_group
from iseg.training import checkpointing
from iseg.training.checkpointing import AtomicCheckpointIO, check_resume_checkpoint
from iseg.training.run import train
from iseg.training.trainer import Trainer
from tests.conftest import compose_train_config


def test_a_failed_write_leaves_the_previous_checkpoint_and_no_partial_file(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    target = tmp_path / "checkpoints" / "epoch_000.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, target)
    assert torch.load(target)["step"] == 1

    def full_disk(obj, file):
        file.write(b"\0" * 1000)  # part of the checkpoint reaches the disk, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpointing.torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, target)
    monkeypatch.undo()
    assert torch.load(target)["step"] == 1  # the previous checkpoint, intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["epoch_000.ckpt"]  # no temporary left behind
    assert (target.stat().st_mode & 0o777) == (0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_trainer_writes_checkpoints_atomically(tmp_path):
    trainer = Trainer(enable_progress_bar=False, logger=False, default_root_dir=tmp_path)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


class _Interrupt(Callback):
    """Interrupts training after the first batch (Ctrl-C or SIGTERM) or before the protocol (SIGTERM)."""

    def __init__(self, how: str):
        self.how = how

    def on_train_batch_end(self, trainer, *args):
        if self.how == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)  # Lightning's handler: stop at the next check
        elif self.how == "ctrl-c":
            raise KeyboardInterrupt

    def on_validation_epoch_end(self, trainer, *args):  # callbacks run before the module's protocol
        if self.how == "sigterm-before-protocol":
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "sigterm-before-protocol"])
def test_an_interrupted_run_writes_a_resumable_checkpoint(tmp_path, monkeypatch, how, caplog):
    cfg = compose_train_config(tmp_path, ["trainer.max_epochs=3", "data.train_dataset.epoch_len=12"])
    def with_interrupt(config, kind):
        objects = instantiate_group(config, kind)
        return [*objects, _Interrupt(how)] if kind == "callbacks" else objects

    monkeypatch.setattr("iseg.training.run.instantiate_group", with_interrupt)
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit), caplog.at_level(logging.INFO):
            train(cfg)
    finally:
        signal.signal(signal.SIGINT, sigint)  # Lightning ignores further Ctrl-C after the first
    path = tmp_path / "checkpoints" / "interrupted.ckpt"
    assert path.is_file()
    state = torch.load(path, map_location="cpu", weights_only=False)
    assert state["global_step"] >= 1 and "optimizer_states" in state and "loops" in state
    if how == "sigterm-before-protocol":  # the protocol stopped at its first sample
        assert state["global_step"] == 3 and "validation protocol, epoch 1" not in caplog.text
    assert f"resume with: python train.py ckpt_path={path}" in caplog.text


def test_resume_from_a_directory_or_a_missing_file_says_so(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(IsADirectoryError, match=r"is a directory, not a checkpoint file; checkpoints in it: checkpoints/last.ckpt"):
        check_resume_checkpoint(tmp_path / "run", None)
    with pytest.raises(FileNotFoundError, match="no such file"):
        check_resume_checkpoint(tmp_path / "nope.ckpt", None)


def test_resume_from_another_architecture_gives_the_short_diagnosis(tmp_path):
    module = instantiate(compose_train_config(tmp_path).model)  # HRNet-W18-small
    other = instantiate(compose_train_config(tmp_path, ["model=ritm_resnet34"]).model)
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": other.state_dict(), "loops": {}, "hyper_parameters": {}}, path)
    with pytest.raises(CheckpointError) as error:
        check_resume_checkpoint(path, module)
    message = str(error.value)
    assert "does not fit the configured model" in message
    assert "HRNet-W18-small" in message and "DeepLabV3+ ResNet-34" in message
    assert "missing keys" in message and "unexpected keys" in message
    assert len(message.splitlines()) <= 5 and len(message) < 6000

    official = tmp_path / "official.pth"
    torch.save({"state_dict": module.net.state_dict(), "config": {}}, official)
    with pytest.raises(CheckpointError, match="not an iseg training checkpoint"):
        check_resume_checkpoint(official, module)
    torch.save({"state_dict": module.state_dict(), "loops": {}}, path)
    check_resume_checkpoint(path, module)  # the same architecture: fine
