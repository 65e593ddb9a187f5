"""Exported models (``python -m iseg.export``) called like the network they came from.

An :class:`ExportedNetwork` reads what iseg stored in the ONNX model (the input adapter, the
inputs fixed at export, the network's name) and checks every call's inputs against the graph's;
a subclass only starts its runtime and runs it: :class:`OnnxRuntimeNetwork` (onnxruntime's CPU
session) or :class:`OpenVinoNetwork` (OpenVINO's CPU plugin, which fuses the graph further and
runs about a tenth faster than onnxruntime or PyTorch on a recent Intel CPU).
"""

from __future__ import annotations

import functools
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iseg.models.inputs import NetInputs

_EXTRA = "pip install 'iseg[onnx]'"


class ExportedNetwork(ABC):
    """An exported model called like the network (``net(**inputs)`` -> ``{"instances": logits}``).

    Args:
        model: path of the ``.onnx`` file, or the model's bytes.
        threads: intra-op threads (None: ``torch.get_num_threads()``, so that one thread setting
            governs every backend).
    """

    supports_gradients = False
    backend = ""  # the name in :data:`iseg.inference.backends.BACKENDS`

    def __init__(self, model: str | Path | bytes, threads: int | None = None):
        try:
            import onnx
        except ImportError as error:
            raise ImportError(f"backend={self.backend!r} needs the onnx package: {_EXTRA}") from error
        self.source = "<in-memory model>" if isinstance(model, bytes) else str(model)
        if not isinstance(model, bytes):
            path = Path(model)
            if not path.is_file():
                raise FileNotFoundError(f"ONNX model {path} does not exist")
            model = path.read_bytes()
        self.model_bytes = model
        try:
            proto = onnx.load_model_from_string(model)
            self._start(model, threads if threads is not None else torch.get_num_threads())
        except ImportError:
            raise
        except Exception as error:
            raise ValueError(f"{self.source}: not an ONNX model {self.backend} can load ({error})") from error
        metadata = {prop.key: prop.value for prop in proto.metadata_props}
        from iseg.export.onnx import METADATA_CONSTANTS, METADATA_INPUTS, METADATA_NETWORK

        if METADATA_INPUTS not in metadata:
            raise ValueError(f"{self.source}: an ONNX model without iseg's metadata; export it with python -m iseg.export")
        self.network_name = metadata.get(METADATA_NETWORK, "?")
        self._inputs_config = json.loads(metadata[METADATA_INPUTS])
        self.constants: dict[str, Any] = json.loads(metadata.get(METADATA_CONSTANTS, "{}"))
        initializers = {tensor.name for tensor in proto.graph.initializer}
        self.input_types = {
            value.name: value.type.tensor_type.elem_type for value in proto.graph.input if value.name not in initializers
        }
        self.output_names = [value.name for value in proto.graph.output]

    @abstractmethod
    def _start(self, model: bytes, threads: int) -> None:
        """Load ``model`` into the runtime with ``threads`` intra-op threads."""

    @abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs named in ``output_names``, in order, as arrays the caller may keep."""

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
        outputs = self._run(feeds)
        device = next((v.device for v in inputs.values() if isinstance(v, torch.Tensor)), torch.device("cpu"))
        return {name: torch.from_numpy(out).to(device) for name, out in zip(self.output_names, outputs)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source}, network={self.network_name})"


class OnnxRuntimeNetwork(ExportedNetwork):
    """The model in an onnxruntime CPU session (one inter-op thread)."""

    backend = "onnxruntime"

    def _start(self, model: bytes, threads: int) -> None:
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError(f"backend='onnxruntime' needs onnxruntime: {_EXTRA}") from error
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.output_names, feeds)


class OpenVinoNetwork(ExportedNetwork):
    """The model compiled by OpenVINO's CPU plugin for latency (one stream), in float32.

    Float32 is asked for explicitly: on CPUs with bfloat16 units (AMX, AVX512-BF16) the plugin
    would otherwise run in bfloat16, whose rounding moves clicks. Input sizes stay dynamic.
    """

    backend = "openvino"

    def _start(self, model: bytes, threads: int) -> None:
        try:
            import openvino
        except ImportError as error:
            raise ImportError("backend='openvino' needs OpenVINO: pip install 'iseg[openvino]'") from error
        core = _openvino_core(openvino)
        config = {
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": threads,
        }
        self.compiled = core.compile_model(core.read_model(model), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self.request.infer(feeds)
        by_name = {port.get_any_name(): value for port, value in results.items()}
        # the request reuses its output buffers on the next call: copy what the caller keeps
        return [np.array(by_name[name], copy=True) for name in self.output_names]


@functools.cache
def _openvino_core(openvino: Any) -> Any:
    """The process's one OpenVINO ``Core``, so that every compiled model shares one CPU plugin.

    Each plugin puts a larger alternate signal stack on the thread that creates it and, destroyed,
    restores the one it found. With a plugin per model, dropping the models in creation order left
    the thread on an unmapped stack, and the process died (SIGSEGV) at the next Python signal handler
    (torch's DataLoader handles SIGCHLD). Kept for the process's lifetime."""
    return openvino.Core()


_NUMPY_TYPES = {1: np.float32, 6: np.int32, 7: np.int64, 11: np.float64}  # onnx.TensorProto element types


def _as_array(name: str, value: Any, elem_type: int) -> np.ndarray:
    dtype = _NUMPY_TYPES.get(elem_type)
    if dtype is None:
        raise ValueError(f"input '{name}' has ONNX element type {elem_type}, which the backends do not feed")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(value, dtype=dtype))
