"""One call from an image and its clicks to a mask, for annotation tools and scripts.

``predict(image, clicks, "coco_lvis_h18s_itermask.pth")`` builds the evaluation predictor of the
chosen settings (conf/eval/predictor, RITM's by default: zoom-in and flip) with the chosen refiner
(conf/eval/refiner: ``none``, ``rgb_brs``, ``distmap_brs``, ``fbrs_a``, ``fbrs_b``, ``fbrs_c``),
adds the clicks one by one as a user would, and returns the final mask. Networks loaded from a path
are kept, so repeated calls do not reload the checkpoint. Images larger than ``MAX_SIZE`` (800 px on
the longer side) are shown to the network scaled down to it (:class:`~iseg.inference.limit_size.LimitLongestSide`),
so a 4000x3000 photo costs about what an 800x600 one does (an :class:`ImageDownscaled` warning
says so); evaluate.py keeps it off.

The image may also be a file path (any format OpenCV decodes). ``checkpoint`` may be an ``.onnx``
model from ``python -m iseg.export`` (run with onnxruntime, or OpenVINO with ``backend="openvino"``),
or ``backend="onnxruntime"``/``"openvino"`` exports a torch checkpoint's network first. Bad input (an unreadable image, a click outside the image, a file
that is not a checkpoint) is refused with a message naming it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from torch import nn

from iseg.inference.predictor import Predictor
from iseg.inference.refiners import Refiner
from iseg.interaction.prompts import Click, Prompt

MAX_SIZE = 800
"""Longer side (pixels) at which the network sees a larger image (LimitLongestSide, RITM's demo value);
the mask comes back at full size."""


class ImageDownscaled(UserWarning):
    """The network saw a large image scaled down to ``MAX_SIZE`` (the mask is at full size)."""


@lru_cache(maxsize=4)
def _cached_model(path: str, mtime: float, backend: str | None) -> object:
    from iseg.inference.backends import EXPORTED_BACKENDS, network_backend, read_network

    net = read_network(path)
    return network_backend(net, backend, torch.device("cpu")) if backend in EXPORTED_BACKENDS else net


def load_network(checkpoint: str | Path | nn.Module, backend: str | None = None) -> nn.Module | object:
    """The network of a checkpoint path (cached while the file is unchanged), or the network given.

    An ``.onnx`` path gives an :class:`~iseg.inference.exported.OnnxRuntimeNetwork`; an exported
    ``backend`` (onnxruntime, openvino) gives the path's network on that backend, exported once and
    cached too, so that repeated calls do not export or compile again."""
    if isinstance(checkpoint, nn.Module):
        return checkpoint
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    return _cached_model(str(path.resolve()), path.stat().st_mtime, backend)


def read_image_file(path: str | Path) -> np.ndarray:
    """uint8 RGB (H, W, 3) of an image file, or an error naming the file."""
    from iseg.data.eval.base import read_image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    return read_image(path)


def make_predictor(
    checkpoint: str | Path | nn.Module,
    refiner: str | Refiner = "none",
    settings: str = "ritm",
    device: str | torch.device = "cpu",
    backend: str | None = None,
) -> Predictor:
    """The predictor evaluate.py builds with ``predictor=<settings> refiner=<refiner>``, large images
    limited to ``MAX_SIZE`` px (``predictor.views.limit_size.max_size``); ``backend`` None is
    onnxruntime for an ``.onnx`` checkpoint, torch otherwise (a checkpoint path on an exported
    backend is exported once and cached, :func:`load_network`)."""
    from iseg.evaluation.runner import compose_eval_config

    overrides = [f"predictor={settings}", f"predictor.views.limit_size.max_size={MAX_SIZE}"]
    overrides += [f"refiner={refiner}"] if isinstance(refiner, str) else []
    config = compose_eval_config(overrides).predictor
    factory = instantiate(config)
    given = {"refiner": refiner} if isinstance(refiner, Refiner) else {}
    return factory(load_network(checkpoint, backend), device=device, backend=backend, **given)


def as_prompt(prompt: Prompt | Sequence) -> Prompt:
    """A prompt, or a click given as a ``(y, x, is_positive)`` tuple."""
    if isinstance(prompt, Prompt):
        return prompt
    if isinstance(prompt, Sequence) and len(prompt) == 3:
        y, x, positive = prompt
        return Click(float(y), float(x), bool(positive))
    raise TypeError(f"expected a prompt or a (y, x, is_positive) tuple, got {prompt!r}")


def predict(
    image: np.ndarray | str | Path,
    clicks: Sequence[Prompt | Sequence],
    checkpoint: str | Path | nn.Module,
    refiner: str | Refiner = "none",
    settings: str = "ritm",
    device: str | torch.device = "cpu",
    return_probs: bool = False,
    backend: str | None = None,
) -> np.ndarray:
    """The mask (bool H x W) after ``clicks`` (prompts, or ``(y, x, is_positive)`` tuples) on
    ``image`` (uint8 RGB H x W x 3, or an image file); the probabilities (float32) with ``return_probs``."""
    if not clicks:
        raise ValueError("predict needs at least one click")
    if isinstance(image, (str, Path)):
        image = read_image_file(image)
    predictor = make_predictor(checkpoint, refiner, settings, device, backend)
    predictor.set_image(image)
    height, width = predictor.image_size
    limit = predictor.views.get("limit_size")
    scaled = limit.output_size(height, width) if limit is not None else None
    if scaled is not None:
        warnings.warn(
            f"the {height}x{width} image is shown to the network at {scaled[0]}x{scaled[1]} (longer side "
            f"MAX_SIZE={MAX_SIZE}); the mask comes back at {height}x{width}",
            ImageDownscaled,
            stacklevel=2,
        )
    for index, click in enumerate(clicks, start=1):
        try:
            prompt = as_prompt(click)
            predictor.add(prompt)
        except (TypeError, ValueError) as error:
            raise type(error)(f"click {index} of {len(clicks)}: {error}") from error
    return predictor.probs.copy() if return_probs else predictor.mask
