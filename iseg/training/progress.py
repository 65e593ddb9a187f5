"""What a training run shows while it runs: the progress bar in a terminal, log lines elsewhere.

- :class:`ProgressBar`: Lightning's Rich bar without the logger version (``v_num``).
- :class:`ProgressLog`: one line per epoch (train loss, validation metrics, seconds) and per run
  of the validation protocol (samples done / total, NoC, seconds); when no bar is shown (output
  to a file, nohup, CI, a cluster log), also a line every ``interval`` seconds during training
  and during the protocol. In a terminal the protocol gets its own task in the bar and the
  epoch/protocol lines are printed above the bar.

The protocol reports through three hooks that :class:`~iseg.methods.interactive.InteractiveModule`
calls on every trainer callback that has them (each rank, its own share of the samples):
``on_protocol_start(trainer, module, total)``, ``on_protocol_record(trainer, module, done, total, record)``
and ``on_protocol_end(trainer, module, metrics, done, total)``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, RichProgressBar

log = logging.getLogger("iseg.progress")


class ProgressBar(RichProgressBar):
    """Lightning's Rich progress bar, without the logger's version number (``v_num``) in it.

    During training batches the shown metrics are read at most every ``metrics_interval`` seconds:
    reading them (the step's loss) makes the host wait for the GPU, and Lightning's bar would do
    it after every batch. Epoch ends and validation show fresh values.
    """

    def __init__(self, *args: Any, metrics_interval: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics_interval = metrics_interval
        self._in_train_batch_end = False
        self._shown: dict[str, Any] | None = None
        self._shown_at = 0.0

    def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self._in_train_batch_end = True
        try:
            super().on_train_batch_end(*args, **kwargs)
        finally:
            self._in_train_batch_end = False

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        now = time.monotonic()
        recent = self._shown is not None and now - self._shown_at < self.metrics_interval
        if self._in_train_batch_end and recent:
            return self._shown
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        self._shown, self._shown_at = items, now
        return items


def interactive_output() -> bool:
    """Whether the console is a terminal (or a notebook) where a live progress bar can redraw."""
    from rich.console import Console

    console = Console()
    return bool(console.is_terminal or console.is_jupyter)


def _format(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}" if abs(value) < 100 else f"{value:.1f}"


class ProgressLog(Callback):
    """Log lines of a run's progress (see the module docstring); rank 0 only.

    Args:
        interval: seconds between progress lines during an epoch and during the protocol, when no
            progress bar is shown (0 or None: no periodic lines, only the per-epoch and per-protocol ones).
        epoch_metrics: the metrics of the epoch line, when logged (``train/loss`` is the epoch mean).
    """

    def __init__(
        self,
        interval: float | None = 60.0,
        epoch_metrics: tuple[str, ...] = ("train/loss", "val/loss", "val/iou", "val/noc85", "val/noc90"),
    ) -> None:
        self.interval = interval or 0.0
        self.epoch_metrics = tuple(epoch_metrics)
        self._epoch_start = 0.0
        self._last_line = 0.0
        self._protocol_start = 0.0
        self._protocol_task: Any = None

    # ----------------------------------------------------------------------------- output
    @staticmethod
    def _live_bar(trainer: L.Trainer) -> RichProgressBar | None:
        bar = trainer.progress_bar_callback
        live = isinstance(bar, RichProgressBar) and bar.is_enabled and bar.progress is not None
        return bar if live and not getattr(bar, "_progress_stopped", False) else None

    def _emit(self, trainer: L.Trainer, message: str) -> None:
        """A line for the user: logged, or printed above a live bar (and written to the log files)."""
        bar = self._live_bar(trainer)
        if bar is None:
            log.info(message)
            return
        bar.progress.console.print(message, markup=False, highlight=False)
        record = log.makeRecord(log.name, logging.INFO, __file__, 0, message, None, None)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)

    def _periodic_due(self, trainer: L.Trainer) -> bool:
        if not self.interval or self._live_bar(trainer) is not None:
            return False
        now = time.perf_counter()
        if now - self._last_line < self.interval:
            return False
        self._last_line = now
        return True

    # ------------------------------------------------------------------------------ epochs
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = self._last_line = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not trainer.is_global_zero or not self._periodic_due(trainer):
            return
        total = trainer.num_training_batches
        done = batch_idx + 1
        seconds = time.perf_counter() - self._epoch_start
        loss = trainer.callback_metrics.get("train/loss_step", trainer.callback_metrics.get("train/loss"))
        parts = [f"epoch {trainer.current_epoch + 1}/{_max_epochs(trainer)}: step {done}/{_count(total)}"]
        if loss is not None:
            parts.append(f"train/loss {_format(float(loss))}")
        parts.append(f"{done / seconds:.2f} it/s" if seconds > 0 else "")
        self._emit(trainer, ", ".join(p for p in parts if p))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        metrics = {k: v for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
        shown = []
        for name in self.epoch_metrics:
            value = metrics.get(f"{name}_epoch", metrics.get(name))
            if value is not None:
                shown.append(f"{name} {_format(float(value))}")
        seconds = time.perf_counter() - self._epoch_start
        self._emit(
            trainer,
            f"epoch {trainer.current_epoch + 1}/{_max_epochs(trainer)}: {', '.join(shown) or 'no metrics'} ({seconds:.0f} s)",
        )

    # ---------------------------------------------------------------------------- protocol
    def on_protocol_start(self, trainer: L.Trainer, pl_module: L.LightningModule, total: int) -> None:
        self._protocol_start = self._last_line = time.perf_counter()
        self._protocol_task = None
        bar = self._live_bar(trainer) if trainer.is_global_zero else None
        if bar is not None:
            self._protocol_task = bar.progress.add_task("Protocol", total=total)
            bar.refresh()

    def on_protocol_record(
        self, trainer: L.Trainer, pl_module: L.LightningModule, done: int, total: int, record: Any
    ) -> None:
        if not trainer.is_global_zero:
            return
        bar = self._live_bar(trainer)
        if bar is not None and self._protocol_task is not None:
            bar.progress.update(self._protocol_task, completed=done)
            bar.refresh()
        elif done < total and self._periodic_due(trainer):
            seconds = time.perf_counter() - self._protocol_start
            self._emit(trainer, f"{_protocol_title(trainer)}: {done}/{total} samples{_rank_note(trainer)} ({seconds:.0f} s)")

    def on_protocol_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, metrics: Mapping[str, float], done: int, total: int
    ) -> None:
        if not trainer.is_global_zero:
            return
        bar = self._live_bar(trainer)
        if bar is not None and self._protocol_task is not None:
            bar.progress.remove_task(self._protocol_task)
            bar.refresh()
        self._protocol_task = None
        seconds = time.perf_counter() - self._protocol_start
        nocs = [f"{key.replace('noc', 'NoC@')} {value:.2f}" for key, value in metrics.items() if key.startswith("noc")]
        self._emit(
            trainer,
            f"{_protocol_title(trainer)}: {done}/{total} samples{_rank_note(trainer)}, "
            f"{', '.join(nocs) or 'no NoC'} ({seconds:.0f} s)",
        )


def _max_epochs(trainer: L.Trainer) -> str:
    epochs = trainer.max_epochs
    return "?" if epochs is None or epochs < 0 else str(epochs)


def _count(value: float) -> str:
    return "?" if not math.isfinite(float(value)) else str(int(value))


def _protocol_title(trainer: L.Trainer) -> str:
    if trainer.state.fn == "fit":
        return f"validation protocol, epoch {trainer.current_epoch + 1}"
    return "validation protocol"


def _rank_note(trainer: L.Trainer) -> str:
    return f" on rank 0 of {trainer.world_size}" if trainer.world_size > 1 else ""
