"""Lightning's Trainer with iseg's run behaviour, so that all of it lives in the trainer config group:
the memory-format switch (``channels_last``), ``torch.compile`` of the network (``compile``),
progress (a bar in a terminal, log lines otherwise), atomic checkpoint writes, and a logging
interval that fits short epochs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.callbacks import ProgressBar as LightningProgressBar

from iseg.training.checkpointing import AtomicCheckpointIO
from iseg.training.compile import CompileNetwork, compile_options
from iseg.training.progress import ProgressBar, ProgressLog, interactive_output


class ChannelsLast(Callback):
    """Converts the module's 4-D weights to channels_last before any loop runs (convolutions then
    produce channels_last activations, the fast layout for cuDNN and oneDNN)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)


class Trainer(L.Trainer):
    """``lightning.Trainer`` with a few extra arguments.

    Args:
        channels_last: convert the module to channels_last (NHWC) before running.
        compile: ``torch.compile`` the module's network in place before running: true for torch's
            defaults, or its arguments (e.g. ``{mode: reduce-overhead}`` for CUDA graphs); see
            :mod:`iseg.training.compile`.
        enable_progress_bar: True shows a progress bar when the output is a terminal; otherwise
            (a file, nohup, CI) progress comes as log lines (:class:`~iseg.training.progress.ProgressLog`).
        progress_interval: seconds between those progress lines within an epoch or a protocol run
            (one line per epoch and per protocol run regardless); 0 turns the periodic lines off.
        log_every_n_steps: as Lightning's, lowered to the epoch length when an epoch is shorter
            (so short runs log their steps, without Lightning's warning).

    Checkpoints are written atomically (:class:`~iseg.training.checkpointing.AtomicCheckpointIO`)
    unless a ``CheckpointIO`` plugin is given.
    """

    def __init__(
        self,
        *,
        channels_last: bool = False,
        compile: bool | Mapping[str, Any] | None = False,
        enable_progress_bar: bool | None = True,
        progress_interval: float | None = 60.0,
        callbacks: Any = None,
        plugins: Any = None,
        **kwargs: Any,
    ):
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback):
            callbacks = [callbacks]
        else:
            callbacks = list(callbacks)
        if channels_last:
            callbacks.append(ChannelsLast())
        options = compile_options(compile)
        if options is not None:
            callbacks.append(CompileNetwork(options))
        if enable_progress_bar is None:
            enable_progress_bar = True
        has_bar = any(isinstance(cb, LightningProgressBar) for cb in callbacks)
        if enable_progress_bar and not has_bar:
            if interactive_output():
                callbacks.append(ProgressBar())
            else:
                enable_progress_bar = False
        if not any(isinstance(cb, ProgressLog) for cb in callbacks):
            callbacks.append(ProgressLog(interval=progress_interval))
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())
        self.channels_last = channels_last
        super().__init__(callbacks=callbacks, plugins=plugins, enable_progress_bar=enable_progress_bar, **kwargs)

    @property
    def log_every_n_steps(self) -> int:
        """The configured interval, or the epoch length when an epoch has fewer training batches."""
        configured = self._configured_log_every_n_steps
        fit_loop = self.__dict__.get("fit_loop")
        batches = getattr(fit_loop, "max_batches", None) if fit_loop is not None else None
        if isinstance(batches, int) and 0 < batches < configured:
            return batches
        return configured

    @log_every_n_steps.setter
    def log_every_n_steps(self, value: int) -> None:
        self._configured_log_every_n_steps = value
