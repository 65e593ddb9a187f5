"""One call from an image and its clicks to a mask, for annotation tools and scripts.

``predict(image, clicks, "coco_lvis_h18s_itermask.pth")`` builds the evaluation predictor of the
chosen settings (conf/eval/predictor, RITM's by default: zoom-in and flip) with the chosen refiner
(conf/eval/refiner: ``none``, ``rgb_brs``, ``distmap_brs``, ``fbrs_a``, ``fbrs_b``, ``fbrs_c``),
adds the clicks one by one as a user would, and returns the final mask. Networks loaded from a path
are kept, so repeated calls do not reload the checkpoint. Images larger than ``MAX_SIZE`` (800 px on
the longer side) are shown to the network scaled down to it (:class:`~iseg.inference.limit_size.LimitLongestSide`),
so a 4000x3000 photo costs about what an 800x600 one does; evaluate.py keeps it off.
"""

from __future__ import annotations

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


@lru_cache(maxsize=4)
def _cached_model(path: str, mtime: float) -> nn.Module:
    from iseg.models.checkpoints import load_model

    return load_model(path, map_location="cpu")


def load_network(checkpoint: str | Path | nn.Module) -> nn.Module:
    """The network of a checkpoint path (cached while the file is unchanged), or the network given."""
    if isinstance(checkpoint, nn.Module):
        return checkpoint
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    return _cached_model(str(path.resolve()), path.stat().st_mtime)


def make_predictor(
    checkpoint: str | Path | nn.Module,
    refiner: str | Refiner = "none",
    settings: str = "ritm",
    device: str | torch.device = "cpu",
) -> Predictor:
    """The predictor evaluate.py builds with ``predictor=<settings> refiner=<refiner>``, large images
    limited to ``MAX_SIZE`` px (``predictor.views.limit_size.max_size``)."""
    from iseg.evaluation.runner import compose_eval_config

    overrides = [f"predictor={settings}", f"predictor.views.limit_size.max_size={MAX_SIZE}"]
    overrides += [f"refiner={refiner}"] if isinstance(refiner, str) else []
    config = compose_eval_config(overrides).predictor
    factory = instantiate(config)
    given = {"refiner": refiner} if isinstance(refiner, Refiner) else {}
    return factory(load_network(checkpoint), device=device, **given)


def as_prompt(prompt: Prompt | Sequence) -> Prompt:
    """A prompt, or a click given as a ``(y, x, is_positive)`` tuple."""
    if isinstance(prompt, Prompt):
        return prompt
    if isinstance(prompt, Sequence) and len(prompt) == 3:
        y, x, positive = prompt
        return Click(float(y), float(x), bool(positive))
    raise TypeError(f"expected a prompt or a (y, x, is_positive) tuple, got {prompt!r}")


def predict(
    image: np.ndarray,
    clicks: Sequence[Prompt | Sequence],
    checkpoint: str | Path | nn.Module,
    refiner: str | Refiner = "none",
    settings: str = "ritm",
    device: str | torch.device = "cpu",
    return_probs: bool = False,
) -> np.ndarray:
    """The mask (bool H x W) after ``clicks`` (prompts, or ``(y, x, is_positive)`` tuples) on
    ``image`` (uint8 RGB H x W x 3); the probabilities (float32) with ``return_probs``."""
    if not clicks:
        raise ValueError("predict needs at least one click")
    predictor = make_predictor(checkpoint, refiner, settings, device)
    predictor.set_image(image)
    for click in clicks:
        predictor.add(as_prompt(click))
    return predictor.probs.copy() if return_probs else predictor.mask
