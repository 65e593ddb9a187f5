"""The prompt-by-prompt predictor: one object serves the evaluation protocol, validation and demos.

It owns what happens around a plain network, in the reference's order (RITM ``BasePredictor``):
the views go forward (e.g. zoom-in, then flip), the method's input adapter builds the network's
inputs from image, previous probabilities and the encoded prompts, the refiner runs the network,
and the views go back in reverse order (flip averages logits, the sigmoid, zoom-in pastes the crop's
probabilities into a full-size map). That map is returned and fed back at the next prompt.

Seams (each a class; none of them is tested by type here):
- ``inputs``: :class:`~iseg.models.inputs.NetInputs`, what the network takes (default: the
  network's ``default_inputs()``);
- ``views``: :class:`~iseg.inference.views.View` in forward order, by name;
- ``refiner``: :class:`~iseg.inference.refiners.Refiner` (default: one forward without gradients);
- ``backend``: what runs the network, ``"torch"``, or ``"onnxruntime"`` / ``"openvino"`` (an
  exported model, :mod:`~iseg.inference.backends`).
Undo restores the probabilities and the state of every view and of the refiner.

Rounds: ``commit()`` ends a round, and the current map becomes the committed one. What the next
prediction sees is the adapter's choice (:meth:`~iseg.models.inputs.NetInputs.round_inputs`):
click networks every prompt and the last prediction, S2M the open round's scribbles on top of
the committed mask (the reference demo's "f" key).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from iseg.inference.backends import check_refiner, network_backend
from iseg.inference.fold_batchnorm import fold_for_inference
from iseg.inference.refiners import NoRefine, RefineContext, Refiner
from iseg.inference.views import Frame, View, named_views
from iseg.interaction.prompts import Prompt, check_prompt
from iseg.models.inputs import NetInputs, inputs_for


@dataclass(frozen=True)
class PredictionState:
    """Everything after one prompt, so that undo() is exact: prompts, output, view and refiner states."""

    prompts: list[Prompt]
    probs: np.ndarray
    prev: torch.Tensor
    view_states: dict[str, Any]
    refiner_state: Any
    round_start: int = 0
    """Index in ``prompts`` of the first prompt of the open round."""
    committed: torch.Tensor | None = None
    """The map committed at the end of the last round (None: zeros, nothing committed yet)."""


class Predictor:
    """Stateful predictor: ``set_image``, then ``add`` one prompt at a time.

    Args:
        net: the network, called as ``net(**inputs(...))``; it returns a dict with ``instances``: logits,
            or probabilities when the adapter says so (``inputs.output_space == "probs"``, Forte et al.).
            With ``backend="onnxruntime"`` or ``"openvino"``: an ``.onnx`` path from
            ``python -m iseg.export`` (or a network, exported in memory first).
        inputs: the method's input adapter; None takes ``net.default_inputs()``.
        views: views in forward order (a sequence, or a name -> view mapping whose None entries are
            off), e.g. ``{"zoom_in": ZoomIn(target_size=400), "flip": Flip()}``.
        refiner: runs the network for each prediction (None: :class:`NoRefine`).
        device: where the network runs (the caller chooses; nothing is moved to CUDA implicitly).
        pred_thr: threshold that turns probabilities into the mask (protocol: 0.49).
        output: the network output holding the logits (``instances``; S2M's per-object
            ``object_logits`` for the multi-object predictor).
        backend: ``"torch"``, ``"onnxruntime"`` or ``"openvino"`` (the last two on the CPU; refiners
            that need gradients are refused); None: torch for an ``nn.Module``, onnxruntime for an
            ``.onnx`` path, an exported network's own backend.
        fold_batchnorm: run a copy of the network with BatchNorm folded into the convolutions
            (:mod:`iseg.inference.fold_batchnorm`: ~10% faster on a CPU; values change by float
            rounding only). Only with a refiner that runs the network whole (NoBRS).
    """

    def __init__(
        self,
        net: nn.Module | str | Path,
        inputs: NetInputs | None = None,
        views: Sequence[View | None] | Mapping[str, View | None] | None = None,
        refiner: Refiner | None = None,
        device: str | torch.device = "cpu",
        pred_thr: float = 0.49,
        output: str = "instances",
        backend: str | None = None,
        fold_batchnorm: bool = False,
    ):
        self.device = torch.device(device)
        self.output = output
        self.net = network_backend(net, backend, self.device)
        self.inputs = inputs_for(self.net, inputs)
        self.views = named_views(views)
        self.refiner = refiner if refiner is not None else NoRefine()
        check_refiner(self.refiner, self.net)
        if fold_batchnorm:
            if not isinstance(self.net, nn.Module):
                raise ValueError(
                    f"fold_batchnorm=true folds a PyTorch network; {self.net!r} is an exported model "
                    "(its runtime folds BatchNorm itself)"
                )
            if not self.refiner.accepts_folded_network:
                raise ValueError(
                    f"fold_batchnorm=true needs a refiner that runs the network whole (refiner none); "
                    f"{type(self.refiner).__name__} hooks the network's inner modules"
                )
            self.net = fold_for_inference(self.net, self.inputs, self.device)
        self.pred_thr = pred_thr
        self._image: torch.Tensor | None = None
        self._zeros: torch.Tensor | None = None
        self._history: list[PredictionState] = []

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", **kwargs: Any) -> Predictor:
        """Build from an iseg or official checkpoint (see :func:`iseg.models.checkpoints.load_model`;
        the network in channels_last, :func:`~iseg.inference.backends.read_network`), or from an
        ``.onnx`` model (``backend="onnxruntime"`` by default, or ``"openvino"``)."""
        from iseg.inference.backends import read_network

        return cls(read_network(path), device=device, **kwargs)

    @property
    def image_size(self) -> tuple[int, int]:
        if self._image is None:
            raise RuntimeError("call set_image() before adding prompts")
        return int(self._image.shape[2]), int(self._image.shape[3])

    @property
    def prompts(self) -> list[Prompt]:
        return list(self._history[-1].prompts) if self._history else []

    @property
    def probs(self) -> np.ndarray:
        """Current probability map (H, W) float32, read-only; zeros before the first prompt."""
        return self._history[-1].probs if self._history else np.zeros(self.image_size, np.float32)

    @property
    def mask(self) -> np.ndarray:
        return self.probs > self.pred_thr

    def set_image(self, image: np.ndarray | torch.Tensor) -> None:
        """Show a new image (clears the prompts); see :func:`image_tensor` for what it may be.

        The image goes to the device once here; prompts only move the previous map, which stays there.
        """
        tensor = image_tensor(image)
        self._image = tensor.unsqueeze(0).to(self.device)
        self._zeros = self._image.new_zeros((1, 1, *self._image.shape[2:]))
        self.reset()

    def reset(self) -> None:
        """Forget all prompts and the views' and refiner's state; keep the image."""
        self._history = []
        for view in self.views.values():
            view.reset()
        self.refiner.reset()

    def undo(self) -> np.ndarray:
        """Remove the last prompt (or commit) and return the probability map before it (view states included)."""
        if self._history:
            self._history.pop()
            if self._history:
                last = self._history[-1]
                for name, view in self.views.items():
                    view.set_state(last.view_states[name])
                self.refiner.set_state(last.refiner_state)
            else:
                self.reset()
        return self.probs

    def add(self, prompt: Prompt) -> np.ndarray:
        """Add one prompt (pixel coordinates of the image) and return the new probability map."""
        prompt = check_prompt(prompt, *self.image_size)  # e.g. a scribble clipped to the image
        last = self._history[-1] if self._history else None
        prompts = self.prompts + [prompt]
        round_start = last.round_start if last else 0
        committed = last.committed if last and last.committed is not None else self._zeros
        seen, prev = self.inputs.round_inputs(prompts, round_start, last.prev if last else self._zeros, committed)
        probs = self._predict(seen, prev, step=len(prompts) - 1)
        host = probs[0, 0].detach().float().cpu().numpy()
        host.flags.writeable = False  # on CPU it shares memory with the map fed back next prompt
        view_states = {name: view.get_state() for name, view in self.views.items()}
        state = PredictionState(prompts, host, probs, view_states, self.refiner.get_state(), round_start, committed)
        self._history.append(state)
        return host

    def commit(self, probs: np.ndarray | None = None) -> np.ndarray:
        """End the round: the current map (or ``probs``, e.g. an object's aggregated or hard mask,
        (H, W) in [0, 1]) becomes the committed map and the next prompt opens a new round.

        Returns the committed map. Committing an empty round without ``probs`` changes nothing;
        ``undo()`` takes a commit back like a prompt.
        """
        last = self._history[-1] if self._history else None
        if probs is None:
            if last is None or last.round_start == len(last.prompts):
                return self.probs
            host, committed = last.probs, last.prev
        else:
            array = np.asarray(probs, dtype=np.float32)
            if array.shape != self.image_size:
                raise ValueError(f"committed map has shape {array.shape}, expected the image's {self.image_size}")
            host = array.copy()
            host.flags.writeable = False
            committed = torch.from_numpy(array.copy()).to(self.device).view(1, 1, *self.image_size)
        view_states = last.view_states if last else {name: view.get_state() for name, view in self.views.items()}
        refiner_state = last.refiner_state if last else self.refiner.get_state()
        prompts = self.prompts
        self._history.append(PredictionState(prompts, host, committed, view_states, refiner_state, len(prompts), committed))
        return host

    def _predict(self, prompts: list[Prompt], prev: torch.Tensor, step: int) -> torch.Tensor:
        """(1, 1, H, W) probabilities at image resolution, on the device."""
        frame = Frame(self._image, prev, [prompts])
        for view in self.views.values():
            frame = view.forward(frame)
        size = (int(frame.image.shape[-2]), int(frame.image.shape[-1]))
        tensors = self.inputs.encode(self.refiner.network_prompts(frame.prompts), self.device, size)
        changed = any(view.image_changed for view in self.views.values())
        context = RefineContext(step, frame.prompts, changed, frame.mirrored)
        outputs = self.refiner(self.net, self.inputs(frame.image, frame.prev, tensors, step), context)
        output = outputs[self.output]
        if output.shape[-2:] != frame.image.shape[-2:]:
            output = F.interpolate(output, size=frame.image.shape[-2:], mode="bilinear", align_corners=True)
        is_logits = self.inputs.output_space == "logits"
        for view in reversed(self.views.values()):
            if view.output_space == "logits" and not is_logits:
                raise ValueError(f"view {type(view).__name__} works on logits, but this network gives probabilities")
            if view.output_space == "probs" and is_logits:
                output, is_logits = torch.sigmoid(output), False
            output = view.inverse(output)
        if is_logits:
            output = torch.sigmoid(output)
        if any(view.needs_recompute() for view in self.views.values()):
            return self._predict(prompts, prev, step)
        return output


def image_tensor(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """The predictor's image, float32 (3, H, W) in [0, 1], from what a user may hold.

    Accepted: a uint8 numpy array (H, W, 3) RGB, (H, W) or (H, W, 1) grayscale (repeated to RGB),
    (H, W, 4) RGBA (alpha dropped); a float tensor (3, H, W) in [0, 1], or a uint8 tensor
    (3, H, W) (divided by 255). Anything else is refused with a message naming its dtype and
    shape; a float tensor with values outside [0, 1] (0-255 values, a normalised image) is refused
    rather than silently giving a wrong map.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            hint = (
                ": for a float image in [0, 1] pass torch.from_numpy(image).permute(2, 0, 1), or convert it with "
                "(image * 255).round().astype(np.uint8)" if image.dtype.kind == "f" else ": convert it to uint8 RGB"
            )
            raise ValueError(f"expected a uint8 image (H, W, 3) RGB, got a {image.dtype} array of shape {image.shape}{hint}")
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
            image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)  # grayscale -> RGB
        elif image.ndim == 3 and image.shape[2] == 4:
            image = image[:, :, :3]  # RGBA -> RGB (alpha dropped)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"expected a uint8 image of shape (H, W, 3) RGB, (H, W) gray or (H, W, 4) RGBA, got shape {image.shape}"
            )
        _check_size(image.shape[:2])
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            hint = ": drop the batch dimension (image[0])" if image.dim() == 4 and image.shape[:2] == (1, 3) else ""
            if image.dim() == 3 and image.shape[2] == 3:
                hint = ": channels first, e.g. image.permute(2, 0, 1)"
            raise ValueError(f"expected a tensor of shape (3, H, W), got {image.dtype} {tuple(image.shape)}{hint}")
        _check_size(tuple(image.shape[1:]))
        if image.dtype == torch.uint8:
            return image.float().div_(255.0)
        if not image.is_floating_point():
            raise ValueError(f"expected a float tensor (3, H, W) in [0, 1] or a uint8 one, got {image.dtype}")
        tensor = image.float()
        low, high = float(tensor.min()), float(tensor.max())
        if not (low >= -1e-3 and high <= 1.0 + 1e-3):  # also False for NaN
            hint = (
                "; it looks like 0-255 values: divide by 255" if high > 1.0 and low >= 0 and high <= 255.0 + 1e-3
                else "; give the plain image in [0, 1] (networks normalise it themselves)"
            )
            raise ValueError(f"a float image tensor must hold values in [0, 1], got values in [{low:g}, {high:g}]{hint}")
        return tensor.clamp(0.0, 1.0) if low < 0 or high > 1 else tensor
    raise TypeError(
        f"image must be a numpy array (H, W, 3) uint8 or a torch tensor (3, H, W), got {type(image).__name__}"
        + (" (np.asarray(image) converts a PIL image)" if hasattr(image, "getbands") else "")
    )


def _check_size(size: tuple[int, ...]) -> None:
    if min(size) < 1:
        raise ValueError(f"the image is empty: size {tuple(size)}")
