"""Folding eval-mode BatchNorm into the convolution before it, for faster inference.

In eval mode ``bn(conv(x))`` is one affine map per output channel after the convolution, so it
can be merged into the convolution's weights and bias (``torch.nn.utils.fusion``), which saves a
full pass over every normalised activation map (about a tenth of an HRNet-18s forward on a CPU).

Which BatchNorm follows which convolution is not declared anywhere in a network, so it is
observed: one forward on example inputs records, for every tensor, the functions that read it.
A pair is folded when a BatchNorm2d's input is the output of a Conv2d and nothing else reads that
output, and each module ran once. The result is a copy; the network is left as it was. Values
change by float rounding only (the folded weights are rounded once), far below the protocol's
0.49 threshold margins in practice; check clicks on your data when exact parity matters.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten


class _ReadCounter(TorchFunctionMode):
    """Counts how many torch functions compute a tensor from each tensor (by identity; the tensors
    are kept alive). Metadata reads (``dim()``, ``shape``: no tensor out) do not count."""

    def __init__(self):
        super().__init__()
        self.reads: Counter[int] = Counter()
        self.keep: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        outputs = [value for value in tree_flatten(out)[0] if isinstance(value, torch.Tensor)]
        if outputs:
            for value in tree_flatten((args, kwargs))[0]:
                if isinstance(value, torch.Tensor):
                    self.reads[id(value)] += 1
            self.keep.extend(outputs)
        return out


def conv_batchnorm_pairs(net: nn.Module, example_inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(conv name, batchnorm name) pairs of ``net`` that can be folded, from one forward on ``example_inputs``."""
    names = {module: name for name, module in net.named_modules()}
    calls: Counter[nn.Module] = Counter()
    conv_of_output: dict[int, nn.Module] = {}
    bn_inputs: dict[nn.Module, int] = {}
    hooks = []

    def count(module, args):
        calls[module] += 1

    def record_conv(module, args, output):
        conv_of_output[id(output)] = module

    def record_bn(module, args):
        bn_inputs[module] = id(args[0])

    for module in names:
        if isinstance(module, nn.Conv2d):
            hooks += [module.register_forward_pre_hook(count), module.register_forward_hook(record_conv)]
        elif isinstance(module, nn.BatchNorm2d):
            hooks += [module.register_forward_pre_hook(count), module.register_forward_pre_hook(record_bn)]
    counter = _ReadCounter()
    try:
        with torch.no_grad(), counter:
            net(**example_inputs)
    finally:
        for hook in hooks:
            hook.remove()
    pairs = []
    for bn, input_id in bn_inputs.items():
        conv = conv_of_output.get(input_id)
        if conv is None or calls[conv] != 1 or calls[bn] != 1 or counter.reads[input_id] != 1:
            continue
        if not bn.track_running_stats or bn.running_mean is None:
            continue
        pairs.append((names[conv], names[bn]))
    return pairs


def fold_batchnorm(net: nn.Module, example_inputs: Mapping[str, Any]) -> nn.Module:
    """An eval-mode copy of ``net`` with every foldable BatchNorm2d merged into its convolution.

    ``example_inputs`` are keyword inputs of one forward (any size; e.g. an input adapter's output
    for a small image and one click). The copy's folded BatchNorms become ``nn.Identity``.
    """
    net = copy.deepcopy(net).eval()
    for conv_name, bn_name in conv_batchnorm_pairs(net, example_inputs):
        conv, bn = net.get_submodule(conv_name), net.get_submodule(bn_name)
        fused = fuse_conv_bn_eval(conv, bn)
        _replace(net, conv_name, fused)
        _replace(net, bn_name, nn.Identity())
    return net


def _replace(net: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    setattr(parent, child, module)


def fold_for_inference(net: nn.Module, inputs: Any, device: torch.device | str = "cpu") -> nn.Module:
    """:func:`fold_batchnorm` with example inputs built by the input adapter ``inputs``
    (:class:`~iseg.models.inputs.NetInputs`): a 64x64 image, its previous mask, one click of
    each sign, a later step. The copy keeps the network's memory format (channels_last or not)."""
    from iseg.interaction.prompts import Click

    channels_last = any(
        p.dim() == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
        for p in net.parameters()
    )
    size = 64
    prompts = inputs.encode([[Click(size / 2, size / 2, True), Click(4.0, 4.0, False)]], device)
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    example = inputs(image, torch.zeros(1, 1, size, size, device=device), prompts, step=1)
    folded = fold_batchnorm(net, example)
    return folded.to(memory_format=torch.channels_last) if channels_last else folded
