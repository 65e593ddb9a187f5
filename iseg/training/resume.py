"""Resuming a run exactly where it stopped.

- the random state a run carries in its checkpoints: the click-simulation generator and torch's
  generators (:func:`random_state`, restored by the module when training starts);
- ``ckpt_path=last``: the newest training checkpoint of this task's earlier runs
  (:func:`find_last_checkpoint`);
- :class:`RunRecord`: every checkpoint records what produced it (:mod:`iseg.provenance`) and the
  W&B run id, which a resumed run reuses (:func:`carry_wandb_run`) so that it continues the same W&B run.

The data order is the loader's part (:mod:`iseg.data.resumable`); optimizer, scheduler and loop
counters are Lightning's.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)

# the files a run writes that hold a full training state (step and epoch checkpoints go to last.ckpt)
RESUMABLE_NAMES = ("last.ckpt", "interrupted.ckpt")


# ------------------------------------------------------------------------------ random state


def random_state(click_rng: np.random.Generator) -> dict[str, Any]:
    """The click generator's state (as JSON text: plain types load with ``weights_only``) and torch's."""
    state: dict[str, Any] = {"click_rng": json.dumps(click_rng.bit_generator.state), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_generator(state: dict[str, Any]) -> np.random.Generator:
    """The click generator saved by :func:`random_state`, at the same point of its stream."""
    saved = json.loads(state["click_rng"])
    bit_generator = getattr(np.random, saved["bit_generator"])()
    bit_generator.state = saved
    return np.random.Generator(bit_generator)


def restore_torch_random_state(state: dict[str, Any]) -> None:
    """torch's CPU (and CUDA, when saved and available) generators as :func:`random_state` saved them."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
        else:
            log.warning("checkpoint has CUDA random states of %d devices, this machine %d: not restored",
                        len(states), torch.cuda.device_count())


# ------------------------------------------------------------------------------ ckpt_path=last


def run_checkpoints(log_dir: str | os.PathLike, task_name: str) -> list[Path]:
    """Resumable checkpoints of the task's runs (``runs/*`` and ``multiruns/*/*``), newest first."""
    root = Path(log_dir) / task_name
    found = [
        path
        for pattern in ("runs/*/checkpoints", "multiruns/*/*/checkpoints")
        for folder in root.glob(pattern)
        for path in (folder / name for name in RESUMABLE_NAMES)
        if path.is_file()
    ]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def find_last_checkpoint(log_dir: str | os.PathLike, task_name: str, exclude: str | os.PathLike | None = None) -> Path:
    """The newest resumable checkpoint (``last.ckpt`` or ``interrupted.ckpt``) of the task's earlier
    runs, leaving out the run folder ``exclude`` (the run now starting)."""
    excluded = Path(exclude).resolve() if exclude else None
    for path in run_checkpoints(log_dir, task_name):
        if excluded is None or excluded not in path.resolve().parents:
            return path
    raise FileNotFoundError(
        f"ckpt_path=last: no {' or '.join(RESUMABLE_NAMES)} in any run of task '{task_name}' under "
        f"{Path(log_dir) / task_name} (runs/*/checkpoints, multiruns/*/*/checkpoints); give the file: ckpt_path=<path>"
    )


def resolve_ckpt_path(cfg: Any, output_dir: str | os.PathLike | None) -> str | None:
    """``cfg.ckpt_path`` as a file: ``last`` becomes the newest checkpoint of this task's earlier runs."""
    value = cfg.get("ckpt_path")
    if value is None or str(value) != "last":
        return None if value is None else str(value)
    path = find_last_checkpoint(cfg.paths.log_dir, cfg.get("task_name", "train"), exclude=output_dir)
    log.info("ckpt_path=last: resuming from %s (run %s)", path, path.parent.parent)
    return str(path)


# ------------------------------------------------------------------------------ run record


def wandb_run_id(trainer: L.Trainer) -> str | None:
    """The id of the trainer's W&B run (None without a W&B logger)."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return str(logger.version) if logger.version else None
    return None


class RunRecord(Callback):
    """Writes into every checkpoint what produced it (``checkpoint['provenance']``: package
    versions, git commit, full config) and the W&B run id (``checkpoint['wandb_run_id']``)."""

    def __init__(self, config: Any = None) -> None:
        from iseg.provenance import provenance

        self.record = provenance(config)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["provenance"] = self.record
        run_id = wandb_run_id(trainer)
        if run_id:
            checkpoint["wandb_run_id"] = run_id


def carry_wandb_run(logger_cfg: Any, checkpoint: dict[str, Any]) -> str | None:
    """Set the W&B logger's ``id`` (and ``resume: allow``) to the run the checkpoint was written by,
    unless an id is configured; returns the id carried (None when nothing was)."""
    from omegaconf import open_dict

    run_id = checkpoint.get("wandb_run_id") if isinstance(checkpoint, dict) else None
    if not run_id or not logger_cfg:
        return None
    for name, entry in logger_cfg.items():
        if entry is None or not str(entry.get("_target_", "")).endswith("WandbLogger"):
            continue
        if entry.get("id"):
            log.info("W&B: logger.%s.id=%s as configured (the checkpoint's run was %s)", name, entry.id, run_id)
            return None
        with open_dict(entry):
            entry.id = run_id
            entry.resume = "allow"
        log.info("W&B: continuing run %s (from the checkpoint)", run_id)
        return run_id
    return None
