"""Segmentation losses of the RITM lineage, per sample (B,), on (B, C, H, W) logits.

Labels are 1 (object), 0 (background) and ``ignore_label`` (-1). The trainer averages the
per-sample values over the batch and weights them (NFL 1.0 on ``instances``, BCE 0.4 on
``instances_aux`` for the ITER-M models; FCFI adds the masked NFL on its corrected feedback).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _check(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    if pred.dim() != 4:
        raise ValueError(f"predictions must have shape (B, C, H, W), got {tuple(pred.shape)}")
    if label.numel() != pred.numel():
        raise ValueError(f"label shape {tuple(label.shape)} does not match prediction shape {tuple(pred.shape)}")
    return label.view(pred.shape)


class NormalizedFocalLoss(nn.Module):
    """Normalized focal loss (RITM): focal weights rescaled so they sum to the number of valid pixels.

    The rescaling keeps the loss magnitude of plain BCE while focusing on hard pixels; the
    normaliser is detached by default (the reference's ``detach_delimeter``), so it only scales
    the gradient. Per sample: -sum(alpha_t (1-p_t)^gamma log p_t) / sum((1-p_t)^gamma), over valid
    pixels, computed in the reference's operation order.
    """

    def __init__(
        self,
        alpha: float = 0.5,
        gamma: float = 2.0,
        eps: float = 1e-12,
        from_sigmoid: bool = False,
        detach_normalizer: bool = True,
        ignore_label: int = -1,
        weight: float = 1.0,
    ):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha
        self.gamma = gamma
        self.eps = eps
        self.from_sigmoid = from_sigmoid
        self.detach_normalizer = detach_normalizer
        self.ignore_label = ignore_label
        self.weight = weight

    def forward(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Logits (or probabilities with ``from_sigmoid``) and labels (B, C, H, W) -> losses (B,)."""
        label = _check(pred, label)
        prob = pred if self.from_sigmoid else torch.sigmoid(pred)
        valid = label != self.ignore_label
        alpha_t = torch.where(label > 0.5, self.alpha * valid, (1 - self.alpha) * valid)
        p_t = torch.where(valid, 1.0 - torch.abs(label - prob), torch.ones_like(prob))
        beta = (1.0 - p_t) ** self.gamma
        num_valid = valid.sum(dim=(-2, -1), keepdim=True)
        mult = num_valid / (beta.sum(dim=(-2, -1), keepdim=True) + self.eps)
        if self.detach_normalizer:
            mult = mult.detach()
        beta = beta * mult
        log_p_t = torch.log(torch.minimum(p_t + self.eps, torch.ones_like(p_t)))
        loss = self.weight * (-alpha_t * beta * log_p_t * valid)
        return loss.sum(dim=(1, 2, 3)) / (valid.sum(dim=(1, 2, 3)) + self.eps)


class MaskedNormalizedFocalLoss(NormalizedFocalLoss):
    """Normalized focal loss restricted to the pixels where ``mask`` is exactly 1 (FCFI's feedback1 loss).

    FCFI compares the corrected feedback with the labels only inside the correction window, a soft
    map in [0, 1]: the reference keeps pixels whose ``mask.long() == 1``, i.e. where the window
    reached exactly 1.0 in floating point, on top of the ignore label. Everything else is
    NormalizedFocalLoss on the kept pixels (normaliser and mean over them only). Like every loss
    here it applies a sigmoid to ``pred`` unless ``from_sigmoid``: FCFI feeds it probability maps
    with the default ``from_sigmoid=False`` (a double sigmoid), which parity needs as is.
    """

    def forward(self, pred: torch.Tensor, label: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits, labels and window (B, C, H, W) -> losses (B,)."""
        label = _check(pred, label)
        if mask.shape != label.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match label shape {tuple(label.shape)}")
        # marking the pixels outside the window as ignored is the same as and-ing the valid masks
        outside = mask.long() != 1
        return super().forward(pred, label.masked_fill(outside, self.ignore_label))


class SigmoidBinaryCrossEntropyLoss(nn.Module):
    """Binary cross-entropy from logits, zero on ignored pixels but averaged over all C x H x W.

    Keeping ignored pixels in the denominator is the reference's behaviour (the aux loss of RITM).
    """

    def __init__(self, from_sigmoid: bool = False, ignore_label: int = -1, weight: float = 1.0):
        super().__init__()
        self.from_sigmoid = from_sigmoid
        self.ignore_label = ignore_label
        self.weight = weight

    def forward(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Logits (or probabilities with ``from_sigmoid``) and labels (B, C, H, W) -> losses (B,)."""
        label = _check(pred, label)
        valid = label != self.ignore_label
        label = torch.where(valid, label, torch.zeros_like(label))
        if self.from_sigmoid:
            eps = 1e-12
            loss = -(torch.log(pred + eps) * label + torch.log(1.0 - pred + eps) * (1.0 - label))
        else:
            loss = F.relu(pred) - pred * label + F.softplus(-torch.abs(pred))
        loss = self.weight * (loss * valid)
        return loss.mean(dim=(1, 2, 3))


class LossTerm(nn.Module):
    """One named term of a method's loss table: ``weight`` x the batch mean of ``loss(outputs[output], gt)``.

    A method's LightningModule receives a mapping name -> LossTerm and adds the weighted terms in
    order (a zero weight skips the term); the logs show each unweighted mean as ``loss_<name>``.
    """

    def __init__(self, loss: nn.Module, output: str = "instances", weight: float = 1.0):
        super().__init__()
        self.loss = loss
        self.output = output
        self.weight = float(weight)

    def prediction(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.output not in outputs:
            raise KeyError(
                f"loss term on output '{self.output}': the network returned only {sorted(outputs)}; "
                "remove the term (set it to null) or change its output"
            )
        return outputs[self.output]

    def forward(self, outputs: dict[str, torch.Tensor], gt: torch.Tensor, step: int = 0) -> torch.Tensor:
        """``step``: the training iteration, for terms with a schedule (S2M's bootstrapping warm-up)."""
        return self.loss(self.prediction(outputs), gt).mean()


class WindowedLossTerm(LossTerm):
    """A term counted only inside a window the network outputs (FCFI's ``valid_masks`` around the
    newest click), the window resized to the labels with nearest neighbours (it counts where it is
    exactly 1.0). ``loss`` takes (prediction, gt, window), e.g. :class:`MaskedNormalizedFocalLoss`."""

    def __init__(self, loss: nn.Module, output: str, window: str = "valid_masks", weight: float = 1.0):
        super().__init__(loss, output, weight)
        self.window = window

    def forward(self, outputs: dict[str, torch.Tensor], gt: torch.Tensor, step: int = 0) -> torch.Tensor:
        if self.window not in outputs:
            raise KeyError(f"loss term on output '{self.output}' needs the window '{self.window}', not in {sorted(outputs)}")
        window = F.interpolate(outputs[self.window], size=gt.shape[-2:], mode="nearest")
        return self.loss(self.prediction(outputs), gt, window).mean()
