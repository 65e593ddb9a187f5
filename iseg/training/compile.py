"""``torch.compile`` for the trained network, switched on from the trainer config (``trainer.compile``).

Where it pays: on a GPU, where the compiled graph fuses BatchNorm/activation passes and
``mode=reduce-overhead`` replays the fixed-shape iterative passes as CUDA graphs. On a CPU it does
not (HRNet18s, batch 4, 2 threads: the same step time after 205 s of compiling), so it is off by
default.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

_COMPILE_OPTIONS = frozenset(inspect.signature(torch.compile).parameters) - {"model"}


def compile_options(setting: bool | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``trainer.compile`` as ``torch.compile`` keyword arguments; None when compiling is off.

    ``true`` compiles with torch's defaults; a mapping gives the arguments (``mode``, ``dynamic``,
    ``fullgraph``, ``backend``, ``options``).
    """
    if setting is None or setting is False:
        return None
    if setting is True:
        return {}
    if not isinstance(setting, Mapping):
        raise ValueError(f"trainer.compile={setting!r}: expected true, false or a mapping of torch.compile arguments")
    unknown = sorted(set(setting) - _COMPILE_OPTIONS)
    if unknown:
        known = ", ".join(sorted(_COMPILE_OPTIONS))
        raise ValueError(f"trainer.compile.{unknown[0]}: not a torch.compile argument (known: {known})")
    # plain dicts (a Hydra config gives DictConfigs), e.g. for ``options``
    return {name: dict(value) if isinstance(value, Mapping) else value for name, value in setting.items()}


def compile_network(module: nn.Module, options: Mapping[str, Any], attribute: str = "net") -> nn.Module:
    """Compile ``module.<attribute>`` in place (``nn.Module.compile``) and return it.

    In place, so parameter names, and so checkpoints, stay those of the plain network, and the
    method's own code (the no-grad click passes, the trained forward, validation) runs the compiled
    graphs unchanged.
    """
    net = getattr(module, attribute, None)
    if not isinstance(net, nn.Module):
        raise TypeError(f"trainer.compile: {type(module).__name__} has no network module '{attribute}' to compile")
    try:
        net.compile(**options)
    except RuntimeError as error:  # e.g. an unknown mode
        raise ValueError(f"trainer.compile: {error}") from error
    return net


class CompileNetwork(Callback):
    """Compiles the LightningModule's network before any loop runs (see :func:`compile_network`).

    ``mode=reduce-overhead`` records one CUDA graph per input shape: keep the validation protocol's
    image sizes few (or set ``dynamic``) when using it.
    """

    def __init__(self, options: Mapping[str, Any], attribute: str = "net") -> None:
        self.options, self.attribute = dict(options), attribute
        self._compiled: set[int] = set()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if id(pl_module) not in self._compiled:
            compile_network(pl_module, self.options, self.attribute)
            self._compiled.add(id(pl_module))
