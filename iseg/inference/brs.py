"""Backpropagating refinement at inference: RGB-BRS, DistMap-BRS and f-BRS-A/B/C (reference §4).

Each is a :class:`~iseg.inference.refiners.Refiner`. From the second click on it minimises, with
SciPy's L-BFGS-B, how badly the prediction disagrees with the clicks:

    L = sum(((1 - p) * pos)^2) / (sum(pos) + eps) + sum((p * neg)^2) / (sum(neg) + eps) + reg

over p = sigmoid(logits) at network-input resolution, where pos/neg are 3x3 squares around every
click of every batch item (the flipped item with its mirrored clicks), and returns the logits of
the lowest loss seen. What is optimised:

- :class:`InputBRS` ``target='rgb'``: an additive bias on the normalised image (RGB-BRS);
  ``target='click_maps'``: on the [positive, negative] click maps (DistMap-BRS). One bias per
  image, mirrored for the flipped item; reg = 1e-3 * sum(bias^2) over both items; reset when a view
  shows a new frame.
- :class:`FeatureBRS` (f-BRS): a per-channel scale s and bias b on the features at the network's
  insertion point for ``mode`` A, B or C (``net.feature_refinement``): features * (1 + s) + b,
  then only the rest of the network runs; reg = 1e-3 * (sum(s^2) + 10 * sum(b^2)). The features
  are recomputed while the network still gets new clicks (``net_clicks_limit``) or the frame changed.

The network sees only the first ``net_clicks_limit`` clicks (5 for input BRS, 8 for f-BRS); later
clicks act through the loss alone. The optimisation stops early (a zero gradient) when every
click is satisfied or the binary mask moved by less than ``min_iou_diff`` in IoU.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import fmin_l_bfgs_b
from torch import nn

from iseg.inference.refiners import RefineContext, Refiner
from iseg.interaction.prompts import Prompt

LogitsFn = Callable[..., torch.Tensor]


def click_masks(prompt_lists: Sequence[Sequence[Prompt]], height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive, negative) float masks (B, 1, H, W): a 3x3 square at every anchor point, rounded
    half to even; as in the reference, a square whose top row or left column would be -1 is cut
    to nothing by the slice (Python's negative start)."""
    pos = np.zeros((len(prompt_lists), 1, height, width), np.float32)
    neg = np.zeros_like(pos)
    for b, prompts in enumerate(prompt_lists):
        for prompt in prompts:
            target = pos if prompt.is_positive else neg
            for y, x in prompt.anchor_points():
                row, col = int(np.round(y)), int(np.round(x))
                target[b, 0, row - 1 : row + 2, col - 1 : col + 2] = 1.0
    return torch.from_numpy(pos).to(device), torch.from_numpy(neg).to(device)


def _mean_iou(current: torch.Tensor, last: torch.Tensor) -> float | None:
    """Mean IoU over batch items with a non-empty union, None when all are empty."""
    union = (current | last).flatten(1).sum(1).float()
    inter = (current & last).flatten(1).sum(1).float()
    keep = union > 0
    return float((inter[keep] / union[keep]).mean()) if bool(keep.any()) else None


@dataclass
class BRSObjective:
    """The function L-BFGS-B minimises for one click: x (float64) -> (loss, gradient float64).

    Keeps the logits of the lowest loss (strict ``<``) and returns a zero gradient on the early
    exits, which makes L-BFGS-B stop on its gradient tolerance.
    """

    logits_of: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    pos: torch.Tensor
    neg: torch.Tensor
    prob_thresh: float = 0.49
    min_iou_diff: float = 0.01
    eps: float = 1e-5
    best_logits: torch.Tensor | None = None
    best_loss: float | None = None
    losses: list[float] = field(default_factory=list)
    _last_mask: torch.Tensor | None = field(default=None, repr=False)

    @property
    def evaluations(self) -> int:
        return len(self.losses)

    def __call__(self, x: np.ndarray) -> tuple[np.float32, np.ndarray]:
        params = torch.from_numpy(x).float().to(self.pos.device).requires_grad_(True)
        with torch.enable_grad():
            logits, reg = self.logits_of(params)
            probs = torch.sigmoid(logits)
            pos_diff = (1 - probs) * self.pos
            neg_diff = probs * self.neg
            loss = (pos_diff**2).sum() / (self.pos.sum() + self.eps) + (neg_diff**2).sum() / (self.neg.sum() + self.eps)
            loss = loss + reg
        value = loss.detach().cpu().numpy()
        self.losses.append(float(value))
        if self.best_logits is None or value < self.best_loss:
            self.best_logits, self.best_loss = logits.detach(), value
        if float(pos_diff.detach().abs().max()) < 1 - self.prob_thresh and float(neg_diff.detach().abs().max()) < self.prob_thresh:
            return value, np.zeros_like(x)
        mask = probs.detach() > self.prob_thresh
        if self._last_mask is not None and self.min_iou_diff > 0:
            iou = _mean_iou(mask, self._last_mask)
            if iou is not None and iou > 1 - self.min_iou_diff:
                return value, np.zeros_like(x)
        self._last_mask = mask
        (grad,) = torch.autograd.grad(loss, params)  # the network's own parameters get no gradient
        return value, grad.cpu().numpy().ravel().astype(np.float64)


class BRSRefiner(Refiner):
    """What every BRS mode shares: the click limit, when to optimise, L-BFGS-B and the loss."""

    needs_gradients = True
    """It optimises through the network's gradients (the torch backend only)."""

    def __init__(
        self,
        net_clicks_limit: int | None = 8,
        optimize_after_n_clicks: int = 1,
        prob_thresh: float = 0.49,
        reg_weight: float = 1e-3,
        min_iou_diff: float = 0.01,
        eps: float = 1e-5,
        lbfgs: Mapping[str, Any] | None = None,
    ):
        if net_clicks_limit is not None and net_clicks_limit < 1:
            raise ValueError(f"net_clicks_limit must be >= 1 or None, got {net_clicks_limit}")
        self.net_clicks_limit = net_clicks_limit
        self.optimize_after_n_clicks = optimize_after_n_clicks
        self.prob_thresh = prob_thresh
        self.reg_weight = reg_weight
        self.min_iou_diff = min_iou_diff
        self.eps = eps
        self.lbfgs = {"m": 20, "factr": 0, "pgtol": 1e-8, "maxfun": 20, "maxiter": 40, **(lbfgs or {})}
        self.last_objective: BRSObjective | None = None
        self.evaluation_counts: list[int] = []
        """L-BFGS evaluations of every optimised click so far (statistics; not interaction state)."""
        self.reset()

    def network_prompts(self, prompt_lists: Sequence[Sequence[Prompt]]) -> list[list[Prompt]]:
        return [list(prompts)[: self.net_clicks_limit] for prompts in prompt_lists]

    def optimize(
        self, x0: np.ndarray, logits_of: Callable, context: RefineContext, size: tuple[int, int], device: torch.device
    ) -> tuple[np.ndarray, torch.Tensor | None]:
        """L-BFGS-B from ``x0`` when there are enough clicks: (new x, logits of the best evaluation);
        (``x0``, None) otherwise."""
        self.last_objective = None
        if len(context.prompts[0]) <= self.optimize_after_n_clicks:
            return x0, None
        pos, neg = click_masks(context.prompts, *size, device)
        objective = BRSObjective(logits_of, pos, neg, self.prob_thresh, self.min_iou_diff, self.eps)
        x, _, _ = fmin_l_bfgs_b(objective, x0, **self.lbfgs)
        self.last_objective = objective
        self.evaluation_counts.append(objective.evaluations)
        return x, objective.best_logits

    def refine(
        self, x: np.ndarray, logits_of: Callable, context: RefineContext, size: tuple[int, int], device: torch.device
    ) -> tuple[np.ndarray, torch.Tensor]:
        """The optimised variables and the logits to return: the best evaluation's, or those at ``x``
        when there was no optimisation (the first click)."""
        x, best = self.optimize(x, logits_of, context, size, device)
        if best is None:
            with torch.no_grad():
                best, _ = logits_of(torch.from_numpy(np.asarray(x)).float().to(device))
        return x, best


class InputBRS(BRSRefiner):
    """RGB-BRS (``target='rgb'``) and DistMap-BRS (``target='click_maps'``): an optimised additive bias
    on the network's normalised image or on its click maps."""

    def __init__(self, target: str = "rgb", net_clicks_limit: int | None = 5, **kwargs: Any):
        if target not in ("rgb", "click_maps"):
            raise ValueError(f"input BRS target must be 'rgb' or 'click_maps', got {target!r}")
        self.target = target
        super().__init__(net_clicks_limit=net_clicks_limit, **kwargs)

    def reset(self) -> None:
        self.bias: np.ndarray | None = None

    @property
    def variables(self) -> np.ndarray | None:
        """The optimised bias, flattened (None before the first prediction)."""
        return self.bias

    def get_state(self) -> Any:
        return self.bias

    def set_state(self, state: Any) -> None:
        self.bias = state

    def __call__(self, net: nn.Module, inputs: Mapping[str, Any], context: RefineContext) -> dict[str, torch.Tensor]:
        module = net.input_refinement_module(self.target)
        image = inputs["image"]
        size = (int(image.shape[2]), int(image.shape[3]))
        shape = (context.num_images, 3 if self.target == "rgb" else 2, *size)
        if self.bias is None or context.image_changed or self.bias.size != int(np.prod(shape)):
            self.bias = np.zeros(int(np.prod(shape)), np.float32)

        def logits_of(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            bias = params.view(shape)
            if context.mirrored:
                bias = torch.cat((bias, torch.flip(bias, dims=[3])), dim=0)
            handle = module.register_forward_hook(lambda _module, _args, out: out + bias)
            try:
                logits = net(**inputs)["instances"]
            finally:
                handle.remove()
            return logits, self.reg_weight * torch.sum(bias**2)

        self.bias, logits = self.refine(self.bias, logits_of, context, size, image.device)
        return {"instances": logits}


class FeatureBRS(BRSRefiner):
    """f-BRS-A/B/C: an optimised per-channel scale and bias at the network's insertion point for
    ``mode``; only the rest of the network runs per L-BFGS evaluation."""

    def __init__(self, mode: str = "B", net_clicks_limit: int | None = 8, reg_bias_weight: float = 10.0, **kwargs: Any):
        if mode not in ("A", "B", "C"):
            raise ValueError(f"f-BRS mode must be 'A', 'B' or 'C', got {mode!r}")
        self.mode = mode
        self.reg_bias_weight = reg_bias_weight
        super().__init__(net_clicks_limit=net_clicks_limit, **kwargs)

    def reset(self) -> None:
        self.scale_bias: np.ndarray | None = None
        self.cache: tuple[torch.Tensor, Callable] | None = None

    @property
    def variables(self) -> np.ndarray | None:
        """The optimised [scale - 1, bias] vector (None before the first prediction)."""
        return self.scale_bias

    def get_state(self) -> Any:
        return self.scale_bias, self.cache

    def set_state(self, state: Any) -> None:
        self.scale_bias, self.cache = state

    def __call__(self, net: nn.Module, inputs: Mapping[str, Any], context: RefineContext) -> dict[str, torch.Tensor]:
        limit = self.net_clicks_limit
        if self.cache is None or context.image_changed or limit is None or len(context.prompts[0]) <= limit:
            self.cache = net.feature_refinement(dict(inputs), self.mode)
        features, rest = self.cache
        batch, channels = features.shape[:2]
        images = context.num_images
        if self.scale_bias is None or self.scale_bias.size != 2 * channels * images:
            self.scale_bias = np.zeros(2 * channels * images, np.float32)

        def logits_of(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            scale, bias = torch.chunk(params, 2, dim=0)
            reg = self.reg_weight * (torch.sum(scale**2) + self.reg_bias_weight * torch.sum(bias**2))
            scale = (1 + scale).view(images, -1, 1, 1).repeat(batch // images, 1, 1, 1)
            bias = bias.view(images, -1, 1, 1).repeat(batch // images, 1, 1, 1)
            return rest(features * scale + bias), reg

        image = inputs["image"]
        size = (int(image.shape[2]), int(image.shape[3]))
        self.scale_bias, logits = self.refine(self.scale_bias, logits_of, context, size, features.device)
        return {"instances": logits}
