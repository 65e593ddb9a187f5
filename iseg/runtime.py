"""Process-level helpers shared by the train.py and evaluate.py runs: building named callback or
logger groups, one log file per run under DDP, closing W&B between multirun jobs."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig


def instantiate_group(config: DictConfig | None, kind: str) -> list[Any]:
    """Instantiate a dict of named ``_target_`` configs (callbacks, loggers); entries set to null are off."""
    objects: list[Any] = []
    if not config:
        return objects
    if not isinstance(config, (DictConfig, Mapping)):
        raise TypeError(f"the {kind} config must be a mapping of named entries, got {type(config).__name__}")
    for name, entry in config.items():
        if entry is None:
            continue
        if not isinstance(entry, (DictConfig, Mapping)) or "_target_" not in entry:
            raise ValueError(f"{kind} entry '{name}' has no _target_: {entry}")
        objects.append(instantiate(entry))
    return objects


def single_log_file() -> None:
    """Keep the run's log file to rank 0: other DDP ranks log to the console only."""
    if rank_zero_only.rank == 0:
        return
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()


def finish_wandb() -> None:
    """Close the W&B run so the next job of a multirun starts a new one."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()
