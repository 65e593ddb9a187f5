"""Checkpoints a run can rely on: atomic writes, a checkpoint on Ctrl-C / SIGTERM, resume checks.

- :class:`AtomicCheckpointIO`: every checkpoint is written to a temporary file in its own folder
  and renamed over the target (``os.replace``) once complete: a full disk or a kill mid-write
  leaves the previous file intact and no truncated one.
- :class:`InterruptCheckpoint`: on Ctrl-C or SIGTERM during ``fit``, writes ``interrupted.ckpt``
  (the full training state) into the checkpoint folder and says how to resume from it.
- :func:`check_resume_checkpoint`: ``ckpt_path=`` is a readable iseg training checkpoint whose
  network fits the configured one, reported with the loader's short diagnosis otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from iseg.models.checkpoints import (
    CheckpointError,
    describe_architecture,
    load_state_dict_strict,
    read_checkpoint,
)

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into ``.<name>.<random>.tmp`` beside the target, fsync, then ``os.replace``.

    Lightning's own writer stages the file in the system temporary folder and moves it, which
    across file systems is a copy straight into the target: a full disk leaves it truncated.
    Remote paths (``s3://`` ...) go through Lightning's writer unchanged.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options=storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        atomic_torch_save(checkpoint, path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` that either completes or leaves ``path`` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600 files; a checkpoint is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class InterruptCheckpoint(Callback):
    """On Ctrl-C (KeyboardInterrupt) or SIGTERM during training, save ``dirpath/filename``.

    A SIGTERM during the validation protocol stops it at the next sample. Other exceptions (a
    bug, a non-finite loss) write nothing: their state is not worth resuming.
    """

    def __init__(self, dirpath: str | os.PathLike, filename: str = "interrupted.ckpt") -> None:
        self.dirpath = Path(dirpath)
        self.filename = filename

    @property
    def path(self) -> Path:
        return self.dirpath / self.filename

    # The validation protocol can run for minutes inside one Lightning hook, where Lightning does not
    # look at SIGTERM: stop it at the next sample (one process; ranks would wait for each other).
    def on_protocol_start(self, trainer: L.Trainer, pl_module: L.LightningModule, total: int) -> None:
        pass

    def on_protocol_record(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if getattr(trainer, "received_sigterm", False) and trainer.world_size == 1 and trainer.state.fn == "fit":
            raise SIGTERMException()

    def on_protocol_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        pass

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            return
        if trainer.state.fn != "fit" or trainer.global_step == 0 and trainer.current_epoch == 0:
            return  # nothing trained yet
        what = "Ctrl-C" if isinstance(exception, KeyboardInterrupt) else "SIGTERM"
        try:
            trainer.save_checkpoint(self.path)
        except Exception as error:  # the interrupt is what the user must see; say why no checkpoint
            log.error("interrupted (%s); could not save %s: %s", what, self.path, error)
            return
        if trainer.is_global_zero:
            log.warning(
                "interrupted (%s) at epoch %d, global step %d: saved %s; resume with: python train.py ckpt_path=%s",
                what, trainer.current_epoch, trainer.global_step, self.path, _quoted(self.path),
            )


def _quoted(path: Path) -> str:
    text = str(path)
    return f"\"'{text}'\"" if "=" in text else text


def check_resume_checkpoint(path: str | os.PathLike, module: L.LightningModule) -> dict[str, Any]:
    """The checkpoint at ``ckpt_path``; refuses one that cannot resume this run, with a short reason.

    A missing path or a directory (listing the checkpoints in it), a file that is not an iseg
    training checkpoint (e.g. an official RITM/FCFI/f-BRS file), or one whose network does not fit
    the configured network: the loader's diagnosis (architectures, missing/unexpected keys and
    shape mismatches, a few of each) instead of Lightning's full key listing.
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.ckpt")) + sorted(
            str(p.relative_to(path)) for p in path.glob("checkpoints/*.ckpt")
        )
        hint = f"; checkpoints in it: {', '.join(found[:8])}{' ...' if len(found) > 8 else ''}" if found else "; it holds no *.ckpt"
        raise IsADirectoryError(f"ckpt_path={path} is a directory, not a checkpoint file{hint}")
    if not path.exists():
        raise FileNotFoundError(f"ckpt_path={path}: no such file")
    checkpoint = read_checkpoint(path, map_location="cpu")
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "loops" not in checkpoint:
        raise CheckpointError(
            f"ckpt_path={path} is not an iseg training checkpoint (no Lightning training state): it can be "
            "evaluated (evaluate.py checkpoint=...) or loaded (iseg.models.checkpoints.load_model), not resumed"
        )
    net = getattr(module, "net", None)
    if not isinstance(net, torch.nn.Module):
        return checkpoint
    state = {k[len("net."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    expected = net.state_dict()
    if state.keys() == expected.keys() and all(state[k].shape == v.shape for k, v in expected.items()):
        return checkpoint
    try:  # raises before loading anything, since something differs
        load_state_dict_strict(net, state)
    except CheckpointError as error:
        raise CheckpointError(f"ckpt_path={path} does not fit the configured model: {error}") from None
    raise CheckpointError(  # pragma: no cover - load_state_dict_strict found a difference above
        f"ckpt_path={path} does not fit the configured model [{describe_architecture(expected)}]"
    )
