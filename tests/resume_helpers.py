"""A callback for the resume tests: the training process kills itself (SIGKILL) at a given step."""

from __future__ import annotations

import os
import signal

from lightning.pytorch.callbacks import Callback


class KillAt(Callback):
    """SIGKILL this process once ``global_step`` reaches ``step`` (after that step's optimizer update,
    before the step checkpoint callbacks run: the step's work is lost, as in a real crash)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
