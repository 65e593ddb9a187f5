"""Stop training on a non-finite loss, without making the host wait for the GPU every step.

On the host path (:func:`iseg.device_paths.host_path`) the loss is checked at once, before the
backward pass. On an accelerator, reading the loss would wait for the whole queued forward; instead
its finiteness flag is copied to pinned host memory without blocking, behind a CUDA event, and read
at the next check: one step later, when that step's forward has long finished, so waiting on the
event costs nothing. A non-finite loss then stops the run one optimizer step late, naming the step
where it happened. :meth:`NonFiniteLossCheck.verify` also runs before a checkpoint is written and at
the end of an epoch, so no checkpoint holds weights updated from a non-finite loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from iseg.device_paths import host_path


@dataclass
class _Pending:
    finite: torch.Tensor  # bool scalar in host memory (pinned on CUDA)
    ready: torch.cuda.Event | None  # recorded after the copy; None when there is nothing to wait for
    loss: torch.Tensor
    logs: Mapping[str, torch.Tensor]
    stage: str
    epoch: int
    step: int


class NonFiniteLossCheck:
    """Raises ``FloatingPointError`` naming the stage, epoch, step and loss terms of a non-finite loss."""

    def __init__(self) -> None:
        self._pending: _Pending | None = None

    def __call__(self, loss: torch.Tensor, logs: Mapping[str, torch.Tensor], stage: str, epoch: int, step: int) -> None:
        """Check ``loss`` (now, or deferred on an accelerator) after the previous deferred check."""
        self.verify()
        finite = torch.isfinite(loss.detach())
        if host_path(finite) or finite.device.type not in ("cuda", "cpu"):  # other accelerators: at once
            if not bool(finite):
                raise self._error(loss, logs, stage, epoch, step)
            return
        ready = None
        if finite.is_cuda:
            host = torch.empty((), dtype=torch.bool, pin_memory=True)
            host.copy_(finite, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record()
            finite = host
        detached = {name: value.detach() for name, value in logs.items()}
        self._pending = _Pending(finite, ready, loss.detach(), detached, stage, epoch, step)

    def verify(self) -> None:
        """Raise for the deferred check, if its loss was not finite (waits for that loss only)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if pending.ready is not None:
            pending.ready.synchronize()
        if not pending.finite.numpy():  # host memory, read as such
            raise self._error(pending.loss, pending.logs, pending.stage, pending.epoch, pending.step)

    @staticmethod
    def _error(loss: torch.Tensor, logs: Mapping[str, torch.Tensor], stage: str, epoch: int, step: int) -> FloatingPointError:
        terms = ", ".join(f"{name}={value.item():.4g}" for name, value in logs.items())
        return FloatingPointError(
            f"non-finite {stage} loss {loss.item()} at epoch {epoch}, global step {step} ({terms}); "
            "lower the learning rate or check the inputs of this batch"
        )
