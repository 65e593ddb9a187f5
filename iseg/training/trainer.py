"""Lightning's Trainer plus the memory-format switch, so precision and channels_last both live
in the trainer config group."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class ChannelsLast(Callback):
    """Converts the module's 4-D weights to channels_last before any loop runs (convolutions then
    produce channels_last activations, the fast layout for cuDNN and oneDNN)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)


class Trainer(L.Trainer):
    """``lightning.Trainer`` with one extra argument, ``channels_last``."""

    def __init__(self, *, channels_last: bool = False, callbacks: Any = None, **kwargs: Any):
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback):
            callbacks = [callbacks]
        else:
            callbacks = list(callbacks)
        if channels_last:
            callbacks.append(ChannelsLast())
        self.channels_last = channels_last
        super().__init__(callbacks=callbacks, **kwargs)
