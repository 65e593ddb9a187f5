"""Host or accelerator code path: where a tensor's values may be read on the host for free.

Reading a CPU tensor (``bool(t)``, ``t.item()``, ``t.numpy()``) costs nothing; reading a GPU
tensor makes the host wait until every queued kernel has run, so it stops launching work ahead
and the GPU idles. Code with a host shortcut (OpenCV's distance transform, an immediate loss
check, a ``ValueError`` raised from Python) takes it only when :func:`host_path` says so; on an
accelerator it keeps the values on the device (a device-side assert, a deferred check).

:func:`accelerator_paths` makes CPU tensors take the accelerator paths, so that a test on a
machine without a GPU can run them and check (:mod:`iseg.host_reads`) that they read nothing back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

_forced = 0


def host_path(tensor: torch.Tensor) -> bool:
    """True where ``tensor``'s values can be read on the host without waiting for a device."""
    return tensor.device.type == "cpu" and _forced == 0


@contextlib.contextmanager
def accelerator_paths() -> Iterator[None]:
    """Within the block, CPU tensors take the accelerator code paths (for tests on a CPU)."""
    global _forced
    _forced += 1
    try:
        yield
    finally:
        _forced -= 1


def require(condition: torch.Tensor, message: str, detailed: Callable[[], str] | None = None) -> None:
    """Raise ``ValueError`` unless every element of ``condition`` is true.

    On the host path the check is immediate and the error says ``detailed()`` (a message that may
    read tensors, e.g. to name the values at fault), else ``message``. On an accelerator it is a
    device-side assertion (``torch._assert_async``) that fails at a later synchronisation, without
    making the host wait now; on CUDA that is a device-side assert (recent torch prints
    ``message`` with it), after which the process's CUDA context is unusable: it stops a run
    rather than letting it go on with bad inputs.
    """
    satisfied = condition.all()
    if not host_path(condition):
        torch._assert_async(satisfied, message)
    elif not bool(satisfied):
        raise ValueError(detailed() if detailed is not None else message)
