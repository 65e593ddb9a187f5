"""The training next-click rule on the device: one click per sample as tensors, no host round trip.

Same rule as :func:`iseg.interaction.next_click.sample_next_clicks` (reference §2.3): labels
> 0.5 are the object, FN = object and p < thr, FP = not object and p > thr, 5x5 chamfer
distances of the zero-padded maps, positive iff max FN > max FP, candidates = pixels of the chosen
map deeper than half the larger maximum, one candidate drawn uniformly. Candidates are computed
bit for bit as the host rule computes them (:mod:`iseg.interaction.torch_distance`); the draw
maps a uniform u in [0, 1) to the candidate of rank floor(u * count) in row-major order, where the
host rule draws that rank from numpy, so for the same rank both give the same click.

The clicks stay on the device as a :class:`ClickBatch`, which the input adapters write into
their prompt tensors (:meth:`iseg.models.inputs.NetInputs.add_clicks`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from iseg.device_paths import host_path
from iseg.interaction.clicks import Click
from iseg.interaction.errors import padded_distance
from iseg.interaction.torch_distance import chamfer_distance


@dataclass(frozen=True)
class ClickBatch:
    """One click per sample: float32 (B,) ``y`` and ``x``, bool (B,) ``positive`` and ``valid``.

    ``valid`` False marks a sample that got no click (no error region); its other fields are 0.
    Coordinates are floats as in the points layout; the training rule's are whole pixels.
    """

    y: torch.Tensor
    x: torch.Tensor
    positive: torch.Tensor
    valid: torch.Tensor

    def __len__(self) -> int:
        return self.y.shape[0]

    @classmethod
    def from_clicks(cls, clicks: Sequence[Click | None], device: torch.device | str | None = None) -> ClickBatch:
        """Pack host clicks (None = no click) into tensors on ``device``."""
        rows = [(c.y, c.x, bool(c.is_positive), True) if c is not None else (0.0, 0.0, False, False) for c in clicks]
        y, x, positive, valid = zip(*rows) if rows else ((), (), (), ())
        coord = {"dtype": torch.float32, "device": device}
        flag = {"dtype": torch.bool, "device": device}
        return cls(torch.tensor(y, **coord), torch.tensor(x, **coord), torch.tensor(positive, **flag), torch.tensor(valid, **flag))

    def to_clicks(self) -> list[Click | None]:
        """The clicks as host ``Click`` objects (reads the tensors back: for tests and logs)."""
        rows = zip(self.y.tolist(), self.x.tolist(), self.positive.tolist(), self.valid.tolist())
        return [Click(float(y), float(x), bool(p)) if v else None for y, x, p, v in rows]


ClickSampler = Callable[[torch.Tensor, torch.Tensor], ClickBatch]
"""(probabilities (B, 1, H, W), labels (B, 1, H, W)) -> the next click of every sample."""


def _check_inputs(pred_probs: torch.Tensor, gt: torch.Tensor) -> None:
    if pred_probs.dim() != 4 or pred_probs.shape[1] != 1:
        raise ValueError(f"pred_probs must have shape (B, 1, H, W), got {tuple(pred_probs.shape)}")
    if gt.shape != pred_probs.shape:
        raise ValueError(f"gt shape {tuple(gt.shape)} differs from pred_probs shape {tuple(pred_probs.shape)}")


def batch_chamfer_distance(mask: torch.Tensor) -> torch.Tensor:
    """float32 (B, H, W) 5x5 chamfer distances of bool masks, on the masks' device.

    On an accelerator the torch transform runs batched; on the host path OpenCV's per-sample
    transform is much faster and gives the same values (the torch one is tested against it).
    """
    if not host_path(mask):
        return chamfer_distance(mask)
    planes = mask.numpy().view(np.uint8)
    return torch.from_numpy(np.stack([padded_distance(plane, exact=False) for plane in planes]))


def training_click_candidates(
    pred_probs: torch.Tensor, gt: torch.Tensor, pred_thresh: float = 0.49
) -> tuple[torch.Tensor, torch.Tensor]:
    """(candidates bool (B, H, W), positive bool (B,)) of the training rule, on the inputs' device."""
    _check_inputs(pred_probs, gt)
    probs = pred_probs.detach()[:, 0].float()
    gt_fg = gt.detach()[:, 0] > 0.5
    fn = gt_fg & (probs < pred_thresh)
    fp = ~gt_fg & (probs > pred_thresh)
    batch = probs.shape[0]
    distances = batch_chamfer_distance(torch.cat((fn, fp)).contiguous())
    fn_dt, fp_dt = distances[:batch], distances[batch:]
    fn_max, fp_max = fn_dt.amax(dim=(1, 2)), fp_dt.amax(dim=(1, 2))
    positive = fn_max > fp_max  # strict: a tie gives a negative click
    chosen = torch.where(positive.view(-1, 1, 1), fn_dt, fp_dt)
    threshold = torch.maximum(fn_max, fp_max) / 2.0
    return chosen > threshold.view(-1, 1, 1), positive


def pick_candidates(candidates: torch.Tensor, positive: torch.Tensor, draws: torch.Tensor) -> ClickBatch:
    """The candidate of rank floor(u * count) (row-major) of each sample, for uniforms ``draws`` (B,)."""
    batch, _, width = candidates.shape
    flat = candidates.reshape(batch, -1)
    ranks = flat.cumsum(dim=1)  # rank + 1 of each candidate
    counts = ranks[:, -1]
    index = (draws.to(torch.float64) * counts).floor().long()
    index = torch.minimum(index, (counts - 1).clamp(min=0))
    first_beyond = (ranks > index.view(-1, 1)).to(torch.uint8).argmax(dim=1)  # the candidate of that rank
    valid = counts > 0
    y = torch.where(valid, first_beyond // width, 0).float()
    x = torch.where(valid, first_beyond % width, 0).float()
    return ClickBatch(y, x, positive & valid, valid)


def sample_click_batch(
    pred_probs: torch.Tensor, gt: torch.Tensor, draws: torch.Tensor, pred_thresh: float = 0.49
) -> ClickBatch:
    """The training rule's clicks for uniforms ``draws`` (B,) in [0, 1), computed where the inputs are."""
    candidates, positive = training_click_candidates(pred_probs, gt, pred_thresh)
    if draws.shape != (candidates.shape[0],):
        raise ValueError(f"draws must have shape ({candidates.shape[0]},), got {tuple(draws.shape)}")
    return pick_candidates(candidates, positive, draws.to(candidates.device))


class DeviceClickSampler:
    """The training rule on the inputs' device. Its uniforms come from the run's numpy generator (B
    numbers per pass, copied to the device asynchronously from pinned memory), so one checkpointed
    stream drives every simulated click and a resumed run continues it."""

    def __init__(self, rng: np.random.Generator, pred_thresh: float = 0.49):
        self.rng = rng
        self.pred_thresh = pred_thresh

    def __call__(self, pred_probs: torch.Tensor, gt: torch.Tensor) -> ClickBatch:
        _check_inputs(pred_probs, gt)
        draws = torch.from_numpy(self.rng.random(pred_probs.shape[0]))
        if pred_probs.is_cuda:  # from page-locked memory the copy does not wait for the GPU's queue
            draws = draws.pin_memory()
        draws = draws.to(pred_probs.device, non_blocking=True)
        return sample_click_batch(pred_probs, gt, draws, self.pred_thresh)

