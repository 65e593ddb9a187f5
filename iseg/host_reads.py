"""Find where code reads tensor values back to the host (the reads that stall a GPU).

On a GPU, ``.item()``, ``bool(t)``, boolean-mask indexing, ``nonzero`` or ``unique`` wait for every
queued kernel before they return, so the host stops running ahead and the GPU idles while the host
launches the next work. :class:`HostReads` records such calls as they reach ATen, whatever the
tensors' device, so a test on a CPU can assert that an accelerator code path
(:func:`iseg.device_paths.accelerator_paths`) reads nothing, and a benchmark can report reads per
step. ``Tensor.numpy()`` and ``tolist()`` of CPU tensors do not pass through ATen and are not seen;
device-to-host copies (``.cpu()``) are, where the source is on an accelerator.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_aten = torch.ops.aten
# Ops whose result (or output shape) depends on tensor values, so a device must finish first.
_READS = {
    _aten._local_scalar_dense,  # item(), bool(), int(), float()
    _aten.is_nonzero,
    _aten.equal,
    _aten.nonzero,
    _aten.masked_select,
    _aten._unique2,
    _aten.unique_consecutive,
    _aten.unique_dim,
}
_MASK_INDEXED = {_aten.index, _aten.index_put, _aten.index_put_, _aten._index_put_impl_}
_COPIES = {_aten._to_copy, _aten.copy_}
_TORCH_DIR = Path(torch.__file__).resolve().parent


@dataclass(frozen=True)
class HostRead:
    """One read: the ATen op, the device of the tensor read and the innermost caller outside torch
    (``file:line in function``)."""

    op: str
    device: str
    where: str

    def __str__(self) -> str:
        return f"{self.op} at {self.where}"


def _tensor_read(func: torch._ops.OpOverload, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The tensor whose values the call reads on the host, or None for a call that reads none."""
    packet = func.overloadpacket
    first = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if packet in _READS:
        return first
    if packet in _MASK_INDEXED:
        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        masks = [i for i in indices or () if isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)]
        return masks[0] if masks else None
    if packet in _COPIES:
        source = args[1] if packet is _aten.copy_ else first
        target = args[0].device if packet is _aten.copy_ else kwargs.get("device")
        to_host = target is not None and torch.device(target).type == "cpu"
        return source if isinstance(source, torch.Tensor) and source.device.type != "cpu" and to_host else None
    return None


def _caller() -> str:
    for frame in reversed(traceback.extract_stack()[:-3]):
        path = Path(frame.filename).resolve()
        if path == Path(__file__).resolve() or _TORCH_DIR in path.parents:
            continue
        return f"{frame.filename}:{frame.lineno} in {frame.name}"
    return "<unknown>"


class HostReads(TorchDispatchMode):
    """Context manager recording every host read of tensor values made inside it (``reads``)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[HostRead] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (torch's protocol)
        kwargs = kwargs or {}
        read = _tensor_read(func, args, kwargs)
        if read is not None:
            self.reads.append(HostRead(func.overloadpacket.__name__, read.device.type, _caller()))
        return func(*args, **kwargs)

    def on_accelerators(self) -> list[HostRead]:
        """The reads of accelerator tensors (on a GPU run, reads of CPU tensors cost nothing)."""
        return [read for read in self.reads if read.device != "cpu"]

    def summary(self) -> str:
        """One line per distinct place, with its count: for assertion messages and reports."""
        counts: dict[str, int] = {}
        for read in self.reads:
            counts[str(read)] = counts.get(str(read), 0) + 1
        return "\n".join(f"{count} x {place}" for place, count in counts.items()) or "no host reads"
