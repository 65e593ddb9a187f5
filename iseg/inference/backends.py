"""Backends: what runs the network for the predictor.

``torch`` runs the ``nn.Module`` itself. ``onnxruntime`` and ``openvino`` run a model written by
:func:`iseg.export.export_onnx` (``python -m iseg.export``) on the CPU, behind an object that the
predictor calls like the network (``net(**inputs)`` -> ``{"instances": logits}``) and whose
``default_inputs()`` is the adapter stored in the model (:mod:`iseg.inference.exported`). Views,
input adapters and the protocol are the same for all; only refiners that need gradients through
the network (the BRS family) are refused, since an exported model has none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from iseg.inference.exported import ExportedNetwork, OnnxRuntimeNetwork, OpenVinoNetwork

# each exported backend: the class that runs an ONNX model with it
EXPORTED_BACKENDS: dict[str, type[ExportedNetwork]] = {"onnxruntime": OnnxRuntimeNetwork, "openvino": OpenVinoNetwork}
BACKENDS = ("torch", *EXPORTED_BACKENDS)


def default_backend(net: Any) -> str:
    """The backend a network runs on when none is named: torch for an ``nn.Module``, an exported
    network's own, else onnxruntime (an ``.onnx`` path)."""
    if isinstance(net, nn.Module):
        return "torch"
    return net.backend if isinstance(net, ExportedNetwork) else "onnxruntime"


def read_network(path: str | Path, channels_last: bool = True) -> nn.Module | ExportedNetwork:
    """The network in a file, ready for inference: an ``.onnx`` model in an onnxruntime session
    (:func:`network_backend` moves it to another exported backend), else
    a checkpoint (:func:`~iseg.models.checkpoints.load_model`, on the CPU, in eval mode).

    ``channels_last``: a checkpoint's network in channels_last memory format, where oneDNN's and
    cuDNN's convolutions are fastest (an HRNet18s forward on a 2-core CPU: 0.25 s instead of 0.36);
    values change by float rounding only, as between thread counts.
    """
    if Path(path).suffix == ".onnx":
        return OnnxRuntimeNetwork(path)
    from iseg.models.checkpoints import load_model

    net = load_model(path, map_location="cpu")
    return net.to(memory_format=torch.channels_last) if channels_last else net


def network_backend(net: Any, backend: str | None, device: torch.device) -> Any:
    """What the predictor calls: the module on ``device`` (torch), or an exported network.

    For an exported backend, ``net`` is a ``.onnx`` path, an exported network (of any exported
    backend), or an ``nn.Module`` (exported in memory first, which takes a while for large
    networks). ``backend`` None: :func:`default_backend` of ``net``.
    """
    if backend is None:
        backend = default_backend(net)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        if not isinstance(net, nn.Module):
            hint = (
                f": give backend={default_backend(net)!r} (or another of {tuple(EXPORTED_BACKENDS)}) for an ONNX model"
                if isinstance(net, (str, Path, ExportedNetwork))
                else ""
            )
            raise TypeError(f"backend='torch' runs an nn.Module, got {type(net).__name__}{hint}")
        return net.to(device).eval()
    if device.type != "cpu":
        raise ValueError(f"backend={backend!r} runs on the CPU; got device={device}")
    cls = EXPORTED_BACKENDS[backend]
    if isinstance(net, cls):
        return net
    if isinstance(net, ExportedNetwork):
        return cls(net.model_bytes)
    if isinstance(net, nn.Module):
        from iseg.export.onnx import export_onnx

        return cls(export_onnx(net))
    if isinstance(net, (str, Path)):
        return cls(net)
    raise TypeError(f"backend={backend!r} runs an .onnx path, an exported network or an nn.Module, got {type(net).__name__}")


def check_refiner(refiner: object, net: Any) -> None:
    """Refuse a refiner that needs gradients through a network that has none (onnxruntime)."""
    if getattr(refiner, "needs_gradients", False) and not getattr(net, "supports_gradients", True):
        raise ValueError(
            f"refiner {type(refiner).__name__} optimises through the network's gradients, which {net!r} does not "
            "have: use refiner='none' with backend='onnxruntime', or the torch backend"
        )

