"""Backends: what runs the network for the predictor.

``torch`` runs the ``nn.Module`` itself. ``onnxruntime`` runs a model written by
:func:`iseg.export.export_onnx` (``python -m iseg.export``) in an onnxruntime session, behind an
object that the predictor calls like the network (``net(**inputs)`` -> ``{"instances": logits}``)
and whose ``default_inputs()`` is the adapter stored in the model. Views, input adapters and the
protocol are the same for both; only refiners that need gradients through the network (the BRS
family) are refused, since an onnxruntime session has none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from iseg.models.inputs import NetInputs

BACKENDS = ("torch", "onnxruntime")


class OnnxRuntimeNetwork:
    """An exported model in an onnxruntime session, called like the network it came from.

    Args:
        model: path of the ``.onnx`` file, or the model's bytes.
        threads: intra-op threads of the session (None: ``torch.get_num_threads()``, so that one
            thread setting governs both backends).
    """

    supports_gradients = False

    def __init__(self, model: str | Path | bytes, threads: int | None = None):
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError("backend='onnxruntime' needs onnxruntime: pip install 'iseg[onnx]'") from error
        self.source = "<in-memory model>" if isinstance(model, bytes) else str(model)
        if not isinstance(model, bytes):
            path = Path(model)
            if not path.is_file():
                raise FileNotFoundError(f"ONNX model {path} does not exist")
            model = path.read_bytes()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads if threads is not None else torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        try:
            self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise ValueError(f"{self.source}: not an ONNX model onnxruntime can load ({error})") from error
        metadata = self.session.get_modelmeta().custom_metadata_map
        from iseg.export.onnx import METADATA_CONSTANTS, METADATA_INPUTS, METADATA_NETWORK

        if METADATA_INPUTS not in metadata:
            raise ValueError(f"{self.source}: an ONNX model without iseg's metadata; export it with python -m iseg.export")
        self.network_name = metadata.get(METADATA_NETWORK, "?")
        self._inputs_config = json.loads(metadata[METADATA_INPUTS])
        self.constants: dict[str, Any] = json.loads(metadata.get(METADATA_CONSTANTS, "{}"))
        self.input_types = {arg.name: arg.type for arg in self.session.get_inputs()}
        self.output_names = [arg.name for arg in self.session.get_outputs()]

    def default_inputs(self) -> NetInputs:
        """The input adapter stored at export (only NetInputs classes are built from the metadata)."""
        from hydra.utils import get_class

        config = dict(self._inputs_config)
        target = config.pop("_target_", None)
        cls = get_class(target) if isinstance(target, str) else None
        if cls is None or not (isinstance(cls, type) and issubclass(cls, NetInputs)):
            raise ValueError(f"{self.source}: the stored input adapter {target!r} is not an iseg NetInputs class")
        return cls(**config)

    def __call__(self, **inputs: Any) -> dict[str, torch.Tensor]:
        feeds = {}
        for name, value in inputs.items():
            if name in self.input_types:
                feeds[name] = _as_array(name, value, self.input_types[name])
            elif name not in self.constants or self.constants[name] != value:
                fixed = f"fixed to {self.constants[name]!r} at export" if name in self.constants else "not an input"
                raise ValueError(f"{self.source}: input '{name}' = {value!r} is {fixed} in the exported model")
        missing = sorted(set(self.input_types) - set(feeds))
        if missing:
            raise ValueError(f"{self.source}: inputs {missing} are missing (got {sorted(inputs)})")
        outputs = self.session.run(self.output_names, feeds)
        device = next((v.device for v in inputs.values() if isinstance(v, torch.Tensor)), torch.device("cpu"))
        return {name: torch.from_numpy(out).to(device) for name, out in zip(self.output_names, outputs)}

    def __repr__(self) -> str:
        return f"OnnxRuntimeNetwork({self.source}, network={self.network_name})"


_DTYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(double)": np.float64, "tensor(int32)": np.int32}


def _as_array(name: str, value: Any, onnx_type: str) -> np.ndarray:
    dtype = _DTYPES.get(onnx_type)
    if dtype is None:
        raise ValueError(f"input '{name}' has ONNX type {onnx_type}, which the backend does not feed")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(value, dtype=dtype))


def default_backend(net: Any) -> str:
    """The backend a network runs on when none is named: torch for an ``nn.Module``, else onnxruntime."""
    return "torch" if isinstance(net, nn.Module) else "onnxruntime"


def read_network(path: str | Path, channels_last: bool = True) -> nn.Module | OnnxRuntimeNetwork:
    """The network in a file, ready for inference: an ``.onnx`` model in an onnxruntime session, else
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
    """What the predictor calls: the module on ``device`` (torch), or an onnxruntime network.

    For ``onnxruntime``, ``net`` is a ``.onnx`` path, an :class:`OnnxRuntimeNetwork`, or an
    ``nn.Module`` (exported in memory first, which takes a while for large networks). ``backend``
    None: :func:`default_backend` of ``net``.
    """
    if backend is None:
        backend = default_backend(net)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        if not isinstance(net, nn.Module):
            hint = ": give backend='onnxruntime' for an ONNX model" if isinstance(net, (str, Path, OnnxRuntimeNetwork)) else ""
            raise TypeError(f"backend='torch' runs an nn.Module, got {type(net).__name__}{hint}")
        return net.to(device).eval()
    if device.type != "cpu":
        raise ValueError(f"backend='onnxruntime' runs on the CPU (onnxruntime's CPU package); got device={device}")
    if isinstance(net, OnnxRuntimeNetwork):
        return net
    if isinstance(net, nn.Module):
        from iseg.export.onnx import export_onnx

        return OnnxRuntimeNetwork(export_onnx(net))
    if isinstance(net, (str, Path)):
        return OnnxRuntimeNetwork(net)
    raise TypeError(f"backend='onnxruntime' runs an .onnx path or an nn.Module, got {type(net).__name__}")


def check_refiner(refiner: object, net: Any) -> None:
    """Refuse a refiner that needs gradients through a network that has none (onnxruntime)."""
    if getattr(refiner, "needs_gradients", False) and not getattr(net, "supports_gradients", True):
        raise ValueError(
            f"refiner {type(refiner).__name__} optimises through the network's gradients, which {net!r} does not "
            "have: use refiner='none' with backend='onnxruntime', or the torch backend"
        )

