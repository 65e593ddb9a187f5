"""The click-by-click predictor: one object serves the evaluation protocol, validation and demos.

It owns the pre- and post-processing around a plain network, in the reference's order
(RITM ``BasePredictor``): input = image + previous probability map (ITER-M networks), then
zoom-in, then horizontal flip; the network runs once on the batch [x, mirror(x)]; on the way
back the two logit maps are averaged, the sigmoid applied, and zoom-in pastes the crop's
probabilities into a full-size map. That map is returned and fed back at the next click.

Feedback networks (FCFI, ``net.takes_feedback``) go through the same steps; they always get the
previous probabilities as channel 3 and, in addition, the newest click in network-input pixels
(after zoom-in; mirrored in the flipped half of the batch) and CFFM's gate (see
:mod:`iseg.inference.feedback`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from iseg.inference.feedback import feedback_gate, newest_clicks
from iseg.inference.flip import add_flipped, average_flipped
from iseg.inference.zoom_in import Box, ZoomIn, ZoomInSpec, ZoomInState, make_zoom_in
from iseg.interaction.clicks import Click, clicks_to_points


@dataclass(frozen=True)
class PredictionState:
    """Everything after one click, so that undo() is exact: clicks, output, zoom-in state."""

    clicks: list[Click]
    probs: np.ndarray
    prev: torch.Tensor
    zoom_state: ZoomInState | None


class Predictor:
    """Stateful predictor: ``set_image``, then ``add_click`` one click at a time.

    Args:
        net: an ISModel-like network ``net(input, points) -> {'instances': logits}``; it gets
            the previous probabilities as a 4th input channel when ``net.with_prev_mask`` is true.
            A network with ``takes_feedback = True`` (FCFI) is called as
            ``net(input, points, new_points, gate)`` and always gets the 4th channel.
        device: where the network runs (the caller chooses; nothing is moved to CUDA implicitly).
        with_flip: average the logits of the input and its mirror (RITM evaluation: on).
        pred_thr: threshold that turns probabilities into the mask (protocol: 0.49).
        net_clicks_limit: feed only the first this-many clicks to the network (reference BRS modes).
        zoom_in: None (off), ZoomIn parameters (e.g. ``{'target_size': 400}``), "fixed<N>",
            or a :class:`ZoomIn` (see :func:`iseg.inference.zoom_in.make_zoom_in`).
    """

    supports_feedback_networks = True
    """Runs FCFI networks too (the evaluation refuses a predictor class without this attribute for them)."""

    def __init__(
        self,
        net: nn.Module,
        device: str | torch.device = "cpu",
        with_flip: bool = False,
        pred_thr: float = 0.49,
        net_clicks_limit: int | None = None,
        zoom_in: ZoomInSpec = None,
    ):
        if net_clicks_limit is not None and net_clicks_limit < 1:
            raise ValueError(f"net_clicks_limit must be >= 1 or None, got {net_clicks_limit}")
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.with_flip = with_flip
        self.pred_thr = pred_thr
        self.net_clicks_limit = net_clicks_limit
        self.zoom_in: ZoomIn | None = make_zoom_in(zoom_in)
        self.takes_feedback = bool(getattr(net, "takes_feedback", False))
        self.with_prev_mask = self.takes_feedback or bool(getattr(net, "with_prev_mask", False))
        self._image: torch.Tensor | None = None
        self._zeros: torch.Tensor | None = None
        self._history: list[PredictionState] = []

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", **kwargs) -> Predictor:
        """Build from an iseg or official checkpoint (see :func:`iseg.models.checkpoints.load_model`)."""
        from iseg.models.checkpoints import load_model

        return cls(load_model(path, map_location="cpu"), device=device, **kwargs)

    @property
    def image_size(self) -> tuple[int, int]:
        if self._image is None:
            raise RuntimeError("call set_image() before clicking")
        return int(self._image.shape[2]), int(self._image.shape[3])

    @property
    def clicks(self) -> list[Click]:
        return list(self._history[-1].clicks) if self._history else []

    @property
    def probs(self) -> np.ndarray:
        """Current probability map (H, W) float32, read-only; zeros before the first click."""
        return self._history[-1].probs if self._history else np.zeros(self.image_size, np.float32)

    @property
    def mask(self) -> np.ndarray:
        return self.probs > self.pred_thr

    @property
    def roi(self) -> Box | None:
        """Zoom-in ROI in effect (rmin, rmax, cmin, cmax inclusive), None when not zoomed."""
        return self.zoom_in.roi if self.zoom_in is not None else None

    def set_image(self, image: np.ndarray | torch.Tensor) -> None:
        """image: uint8 RGB (H, W, 3), or a float tensor (3, H, W) in [0, 1]. Clears the clicks.

        The image goes to the device once here; clicks only move the previous map, which stays there.
        """
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"expected a uint8 RGB image of shape (H, W, 3), got {image.dtype} {image.shape}")
            tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
        elif isinstance(image, torch.Tensor):
            if image.dim() != 3 or image.shape[0] != 3:
                raise ValueError(f"expected a float tensor of shape (3, H, W), got {tuple(image.shape)}")
            tensor = image.float()
        else:
            raise TypeError(f"image must be a numpy array or a torch tensor, got {type(image).__name__}")
        self._image = tensor.unsqueeze(0).to(self.device)
        self._zeros = self._image.new_zeros((1, 1, *self._image.shape[2:]))
        self.reset()

    def reset(self) -> None:
        """Forget all clicks and the zoom-in state; keep the image."""
        self._history = []
        if self.zoom_in is not None:
            self.zoom_in.reset()

    def undo(self) -> np.ndarray:
        """Remove the last click and return the probability map before it (zoom-in state included)."""
        if self._history:
            self._history.pop()
            if self.zoom_in is not None:
                if self._history:
                    self.zoom_in.set_state(self._history[-1].zoom_state)
                else:
                    self.zoom_in.reset()
        return self.probs

    def add_click(self, click: Click) -> np.ndarray:
        """Add one click (pixel coordinates of the image) and return the new probability map."""
        if not isinstance(click, Click):
            raise TypeError(f"expected a Click, got {type(click).__name__}: {click!r}")
        height, width = self.image_size
        if not (0 <= click.y < height and 0 <= click.x < width):
            raise ValueError(f"click (y={click.y}, x={click.x}) lies outside the {height}x{width} image")
        clicks = self.clicks + [click]
        prev = self._history[-1].prev if self._history else self._zeros
        with torch.no_grad():
            probs = self._predict(clicks, prev)
        host = probs[0, 0].float().cpu().numpy()
        host.flags.writeable = False  # on CPU it shares memory with the map fed back next click
        zoom_state = self.zoom_in.get_state() if self.zoom_in is not None else None
        self._history.append(PredictionState(clicks, host, probs, zoom_state))
        return host

    def _predict(self, clicks: list[Click], prev: torch.Tensor) -> torch.Tensor:
        """(1, 1, H, W) probabilities at image resolution, on the device."""
        x = torch.cat((self._image, prev), dim=1) if self.with_prev_mask else self._image
        net_clicks = clicks
        if self.zoom_in is not None:
            x, net_clicks = self.zoom_in.transform(x, clicks)
        if self.with_flip:
            x, click_lists = add_flipped(x, net_clicks)
        else:
            click_lists = [net_clicks]
        points = self._points(click_lists)
        if self.takes_feedback:
            new_points = newest_clicks(click_lists, device=self.device)
            logits = self.net(x, points, new_points, feedback_gate(len(clicks)))["instances"]
        else:
            logits = self.net(x, points)["instances"]
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=True)
        if self.with_flip:
            logits = average_flipped(logits)
        probs = torch.sigmoid(logits)
        if self.zoom_in is not None:
            probs = self.zoom_in.inv_transform(probs)
            if self.zoom_in.needs_recompute():
                return self._predict(clicks, prev)
        return probs

    def _points(self, click_lists: Sequence[Sequence[Click]]) -> torch.Tensor:
        """(B, 2N, 3) points; with ``net_clicks_limit`` only the first clicks (in click order) are kept.

        As in the reference, N is sized from the full lists (capped by the limit) before they are cut.
        """
        limit = self.net_clicks_limit
        if limit is None:
            return clicks_to_points(click_lists, device=self.device)
        num_pos = [sum(c.is_positive for c in clicks) for clicks in click_lists]
        most = max(num_pos + [len(clicks) - n for clicks, n in zip(click_lists, num_pos)])
        num_max_points = max(1, min(limit, most))
        return clicks_to_points([list(c)[:limit] for c in click_lists], num_max_points, device=self.device)
