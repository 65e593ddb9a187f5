"""ONNX export of an interactive segmentation network, with the inputs its adapter builds.

The exported graph takes exactly what the predictor passes to the network (the method's input
adapter, ``net.default_inputs()``), by the adapter's names, and returns the ``instances`` logits:

- RITM-lineage ITER-M networks: ``image`` (B, 4, H, W) float32, RGB in [0, 1] with the previous
  probabilities as channel 3, and ``points`` (B, 2N, 3) float32 click rows (positives first,
  (-1, -1, -1) unused; the click disks are drawn inside the graph);
- FCFI networks besides those: ``new_points`` (B, 1, 3) int64 and ``gate`` (a float32 scalar).

Which axes are dynamic is found by building the inputs twice, for two image sizes, batch sizes
and click counts: every axis that changes gets a name (``batch``, ``height``, ``width``, or
``<input>_<axis>`` such as ``points_1``). Inputs the adapter sets to None (FCFI's ``is_training``
at inference) stay None inside the graph. The adapter's :meth:`~iseg.models.inputs.NetInputs.config`
is stored in the model's metadata, so that ``Predictor(path, backend="onnxruntime")`` rebuilds it.

The graph is captured with ``torch.export`` (``torch.onnx.export(dynamo=True)``), which checks that
nothing depends on the example sizes; a network it cannot capture is refused with the exporter's
reason.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from iseg.interaction.prompts import Click
from iseg.models.inputs import NetInputs, inputs_for

OPSET = 18
METADATA_INPUTS = "iseg.inputs"
"""Metadata key: JSON of the input adapter's config (``_target_`` and arguments)."""
METADATA_CONSTANTS = "iseg.constant_inputs"
"""Metadata key: JSON of the adapter's inputs fixed in the graph (name -> value, e.g. ``is_training: null``)."""
METADATA_NETWORK = "iseg.network"
OUTPUT = "instances"

# Two example interactions that differ in every dynamic axis (sizes, not 1, so that nothing is specialised).
_EXAMPLES = (
    {"size": (96, 128), "batch": 2, "clicks": [Click(40, 50, True), Click(70, 20, False)]},
    {"size": (112, 80), "batch": 3, "clicks": [Click(30, 30, True), Click(80, 60, True), Click(10, 70, False), Click(50, 40, True)]},
)


class ExportError(RuntimeError):
    """The network cannot be exported (names the network and the reason)."""


class _GraphInputs(nn.Module):
    """The network as a function of its tensor inputs, in the adapter's order, returning the logits."""

    def __init__(self, net: nn.Module, names: list[str], constants: Mapping[str, Any]):
        super().__init__()
        self.net = net
        self.names = names
        self.constants = dict(constants)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.net(**dict(zip(self.names, tensors)), **self.constants)[OUTPUT]


def example_inputs(inputs: NetInputs, example: Mapping[str, Any], step: int = 1) -> dict[str, object]:
    """The adapter's network inputs for a random image of ``example``'s size, batch and clicks."""
    height, width = example["size"]
    batch = example["batch"]
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, height, width, generator=generator)
    prev = torch.rand(batch, 1, height, width, generator=generator)
    tensors = inputs.encode([list(example["clicks"])] * batch, "cpu")
    return inputs(image, prev, tensors, step)


def split_inputs(values: Mapping[str, object]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(graph inputs: tensors, and numbers as float32 scalars; constants: everything else, e.g. None)."""
    graph: dict[str, torch.Tensor] = {}
    constants: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, torch.Tensor):
            graph[name] = value
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            graph[name] = torch.tensor(float(value), dtype=torch.float32)
        else:
            constants[name] = value
    return graph, constants


def dynamic_axes(first: Mapping[str, torch.Tensor], second: Mapping[str, torch.Tensor]) -> dict[str, dict[int, str]]:
    """Names of the axes that differ between two examples (see the module docstring)."""
    first_example, second_example = _EXAMPLES
    named = {
        (first_example["size"][0], second_example["size"][0]): "height",
        (first_example["size"][1], second_example["size"][1]): "width",
        (first_example["batch"], second_example["batch"]): "batch",
    }
    axes: dict[str, dict[int, str]] = {}
    for name, tensor in first.items():
        if tensor.dim() != second[name].dim():
            raise ExportError(f"input '{name}' has {tensor.dim()} dimensions in one example and {second[name].dim()} in another")
        changed = {
            axis: named.get((a, b), f"{name}_{axis}")
            for axis, (a, b) in enumerate(zip(tensor.shape, second[name].shape))
            if a != b
        }
        if changed:
            axes[name] = changed
    return axes


def dynamic_shapes(names: list[str], axes: Mapping[str, Mapping[int, str]]) -> tuple[dict[int, Any], ...]:
    """torch.export's dynamic shapes of the graph's inputs: ``Dim.AUTO`` on every dynamic axis, so that
    the exporter finds the relations (points = 2 * clicks) and lower bounds itself."""
    return tuple({axis: torch.export.Dim.AUTO for axis in axes.get(name, {})} for name in names)


def name_axes(model: Any, axes: Mapping[str, Mapping[int, str]]) -> None:
    """Give the graph's symbolic dimensions the names of :func:`dynamic_axes` (inputs, outputs, values)."""
    renames: dict[str, str] = {}
    for value in model.graph.input:
        for axis, name in axes.get(value.name, {}).items():
            dim = value.type.tensor_type.shape.dim[axis]
            if dim.dim_param and dim.dim_param not in renames:
                renames[dim.dim_param] = name
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renames:
                dim.dim_param = renames[dim.dim_param]


def export_onnx(net: nn.Module, path: str | Path | None = None, inputs: NetInputs | None = None) -> bytes:
    """Write ``net`` as an ONNX model to ``path`` (None: only return it) and return the model's bytes.

    ``inputs``: the adapter whose inputs the graph takes (None: ``net.default_inputs()``).
    """
    import onnx

    adapter = inputs_for(net, inputs)
    try:
        adapter_config = adapter.config()
    except NotImplementedError as error:
        raise ExportError(f"{type(net).__name__}: {error}") from error
    net = net.eval()
    first, constants = split_inputs(example_inputs(adapter, _EXAMPLES[0]))
    second, _ = split_inputs(example_inputs(adapter, _EXAMPLES[1]))
    names = list(first)
    axes = dynamic_axes(first, second)
    try:
        stored_constants = json.dumps(constants)
    except TypeError as error:
        raise ExportError(f"{type(net).__name__}: inputs {sorted(constants)} are neither tensors, numbers nor JSON values") from error
    graph = _GraphInputs(net, names, constants).eval()
    try:
        program = torch.onnx.export(
            graph,
            tuple(first[name] for name in names),
            input_names=names,
            output_names=[OUTPUT],
            dynamic_shapes=(dynamic_shapes(names, axes),),
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    except Exception as error:  # the exporter's reason, under the network's name
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"{type(net).__name__} cannot be exported to ONNX: {first_line}") from error
    model = program.model_proto
    name_axes(model, axes)
    metadata = {
        METADATA_INPUTS: json.dumps(adapter_config),
        METADATA_CONSTANTS: stored_constants,
        METADATA_NETWORK: f"{type(net).__module__}.{type(net).__qualname__}",
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = (type(net).forward.__doc__ or "").strip()
    data = model.SerializeToString()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
        onnx.checker.check_model(str(path))
    return data
