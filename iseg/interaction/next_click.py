"""The next-click rules: the evaluation protocol's deterministic clicker and the random training rule.

Both click inside the larger error region (false negatives -> positive click, false positives ->
negative click; a tie, including no error at all, gives a negative click) and share the error
maps of :mod:`iseg.interaction.errors`. They differ where the references differ:

- protocol (RITM ``Clicker``): ignore pixels excluded, exact EDT, pixels already clicked get
  distance 0, the click is the first maximum in row-major order;
- training (RITM ``get_next_points``): ignore counts as background, 5x5 chamfer DT, the click is
  drawn uniformly among pixels deeper than half the larger maximum, and is written into the fixed
  slot N-k (positive) or 2N-k (negative) of the points tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from iseg.interaction.clicks import Click
from iseg.interaction.device_clicks import ClickBatch
from iseg.interaction.errors import error_distances

RandomGenerator = np.random.Generator | np.random.RandomState


def validate_gt(gt: np.ndarray) -> np.ndarray:
    """Return ``gt`` as a 2-D int array after checking it holds only 1 (object), 0, -1 (ignore)."""
    gt = np.asarray(gt)
    if gt.ndim != 2:
        raise ValueError(f"gt must be a 2-D mask, got shape {gt.shape}")
    if gt.dtype.kind not in "biuf":
        raise ValueError(f"gt must be numeric, got dtype {gt.dtype}")
    bad = (gt != 1) & (gt != 0) & (gt != -1)
    if bad.any():
        raise ValueError(f"gt values must be 1, 0 or -1 (ignore), found {np.unique(gt[bad])[:5].tolist()}")
    return gt.astype(np.int8, copy=False)


def _pixel(click: Click, shape: tuple[int, int]) -> tuple[int, int]:
    """Integer (row, col) of a protocol click; protocol clicks are pixels of the GT mask."""
    y, x = int(click.y), int(click.x)
    if y != click.y or x != click.x or not (0 <= y < shape[0] and 0 <= x < shape[1]):
        raise ValueError(f"click {click} is not an integer pixel inside the {shape[0]}x{shape[1]} mask")
    return y, x


def _larger_error(fn_dt: np.ndarray, fp_dt: np.ndarray) -> tuple[bool, np.ndarray, float, float]:
    """(is_positive, chosen map, fn max, fp max); strict ``>`` so that ties give a negative click."""
    fn_max, fp_max = fn_dt.max(), fp_dt.max()
    is_positive = bool(fn_max > fp_max)
    return is_positive, fn_dt if is_positive else fp_dt, fn_max, fp_max


def _protocol_click(
    gt_fg: np.ndarray, valid: np.ndarray, pred_mask: np.ndarray, clicked: Sequence[tuple[int, int]]
) -> Click:
    pred_mask = np.asarray(pred_mask)
    if pred_mask.shape != gt_fg.shape:
        raise ValueError(f"pred_mask shape {pred_mask.shape} differs from gt shape {gt_fg.shape}")
    if pred_mask.dtype != bool:
        if not ((pred_mask == 0) | (pred_mask == 1)).all():
            raise ValueError(f"pred_mask must be binary (threshold the probabilities first), got {pred_mask.dtype}")
        pred_mask = pred_mask.astype(bool)
    fn_dt, fp_dt = error_distances(gt_fg, pred_mask, valid, exact=True)
    for y, x in clicked:  # same as multiplying by a not-clicked map: distances are >= 0
        fn_dt[y, x] = 0.0
        fp_dt[y, x] = 0.0
    is_positive, dt, _, _ = _larger_error(fn_dt, fp_dt)
    y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)  # argmax = first maximum, row-major
    return Click(int(y), int(x), is_positive)


def next_click(gt: np.ndarray, pred_mask: np.ndarray, clicks: Sequence[Click]) -> Click:
    """The protocol's next click for ``gt`` (1/0/-1) given the binary ``pred_mask`` and past clicks.

    The first click is computed from an all-false prediction. With a perfect prediction the
    rule returns a negative click at (0, 0), as the reference does.
    """
    gt = validate_gt(gt)
    clicked = [_pixel(c, gt.shape) for c in clicks]
    return _protocol_click(gt == 1, gt != -1, pred_mask, clicked)


class Clicker:
    """One sample's click sequence under the protocol rule; caches the GT-derived masks."""

    def __init__(self, gt: np.ndarray):
        gt = validate_gt(gt)
        self.shape = gt.shape
        self._gt_fg = gt == 1
        self._valid = gt != -1
        self.clicks: list[Click] = []
        self._clicked: list[tuple[int, int]] = []

    def make_next_click(self, pred_mask: np.ndarray) -> Click:
        """Add and return the click the protocol makes after the binary prediction ``pred_mask``."""
        click = _protocol_click(self._gt_fg, self._valid, pred_mask, self._clicked)
        self.clicks.append(click)
        self._clicked.append((int(click.y), int(click.x)))
        return click


def _draw_index(rng: RandomGenerator, n: int) -> int:
    """Uniform index in [0, n); ``RandomState`` uses ``randint`` like the reference's ``np.random``."""
    if isinstance(rng, np.random.RandomState):
        return int(rng.randint(0, n))
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, n))
    raise TypeError(f"rng must be a numpy Generator or RandomState, got {type(rng).__name__}")


def sample_next_clicks(
    pred_probs: torch.Tensor, gt: torch.Tensor, rng: RandomGenerator, pred_thresh: float = 0.49
) -> list[Click | None]:
    """One training click per sample from probabilities (B, 1, H, W) and labels (B, 1, H, W).

    Labels > 0.5 are the object (ignore -1 counts as background). Returns None for a sample
    without a candidate pixel (no error region).
    """
    if pred_probs.dim() != 4 or pred_probs.shape[1] != 1:
        raise ValueError(f"pred_probs must have shape (B, 1, H, W), got {tuple(pred_probs.shape)}")
    if gt.shape != pred_probs.shape:
        raise ValueError(f"gt shape {tuple(gt.shape)} differs from pred_probs shape {tuple(pred_probs.shape)}")
    probs = pred_probs.detach().float().cpu().numpy()[:, 0]
    gt_fg = gt.detach().cpu().numpy()[:, 0] > 0.5
    pred_fg, pred_bg = probs > pred_thresh, probs < pred_thresh
    clicks: list[Click | None] = []
    for b in range(probs.shape[0]):
        fn_dt, fp_dt = error_distances(gt_fg[b], pred_fg[b], pred_bg=pred_bg[b], exact=False)
        is_positive, dt, fn_max, fp_max = _larger_error(fn_dt, fp_dt)
        candidates = np.flatnonzero(dt > max(fn_max, fp_max) / 2.0)
        if len(candidates) == 0:
            clicks.append(None)
            continue
        y, x = divmod(int(candidates[_draw_index(rng, len(candidates))]), dt.shape[1])
        clicks.append(Click(float(y), float(x), is_positive))
    return clicks


def _check_points_layout(points: torch.Tensor, batch: int, click_index: int) -> int:
    """N of a (B, 2N, 3) points layout, after checking that slot k = ``click_index`` exists."""
    if points.dim() != 3 or points.shape[0] != batch or points.shape[1] % 2 or points.shape[2] not in (2, 3):
        raise ValueError(f"points must have shape (B={batch}, 2N, 3), got {tuple(points.shape)}")
    num_points = points.shape[1] // 2
    if not 1 <= click_index <= num_points:
        raise ValueError(f"click_index must be in 1..{num_points} (N of the points layout), got {click_index}")
    return num_points


def write_clicks(points: torch.Tensor, clicks: ClickBatch | Sequence[Click | None], click_index: int) -> torch.Tensor:
    """Copy of ``points`` (B, 2N, 3) with click k = ``click_index`` of each sample in its fixed slot.

    A positive click overwrites slot N-k, a negative one 2N-k, with (y, x, k): the reference fills
    the layout from the end so that sampler clicks at the front are kept. A sample without a click
    (None, or not ``valid`` in a :class:`ClickBatch`) is left as is. Runs on the points' device.
    """
    if not isinstance(clicks, ClickBatch):
        clicks = ClickBatch.from_clicks(clicks, points.device)
    num_points = _check_points_layout(points, len(clicks), click_index)
    slot = torch.where(clicks.positive, num_points - click_index, 2 * num_points - click_index).to(points.device)
    index = slot.view(-1, 1, 1).expand(-1, 1, points.shape[2])
    order = torch.full_like(clicks.y, float(click_index))
    row = torch.stack((clicks.y, clicks.x, order), dim=1)[:, : points.shape[2]].to(points.device, points.dtype)
    kept = points.gather(1, index)[:, 0]
    row = torch.where(clicks.valid.to(points.device).view(-1, 1), row, kept)
    return points.scatter(1, index, row.unsqueeze(1))


def sample_next_points(
    pred_probs: torch.Tensor,
    gt: torch.Tensor,
    points: torch.Tensor,
    click_index: int,
    rng: RandomGenerator,
    pred_thresh: float = 0.49,
) -> torch.Tensor:
    """Copy of ``points`` (B, 2N, 3) with the k-th simulated click (k = ``click_index`` >= 1).

    :func:`sample_next_clicks` followed by :func:`write_clicks` (slot N-k or 2N-k).
    """
    _check_points_layout(points, pred_probs.shape[0], click_index)
    return write_clicks(points, sample_next_clicks(pred_probs, gt, rng, pred_thresh), click_index)


ClickRule = Callable[[torch.Tensor, torch.Tensor, RandomGenerator, float], Sequence[Click | None]]
"""(probabilities (B, 1, H, W), labels (B, 1, H, W), rng, threshold) -> one click or None per sample:
a host rule for :class:`HostClickSampler` (RITM's :func:`sample_next_clicks` by default; Forte et
al.'s robot rule)."""


class HostClickSampler:
    """The training rule on the host, one sample at a time with a numpy generator: the reference's
    way, kept as the oracle of :class:`~iseg.interaction.device_clicks.DeviceClickSampler` and for
    before/after benchmarks."""

    def __init__(self, rng: RandomGenerator, pred_thresh: float = 0.49, rule: ClickRule | None = None):
        self.rng = rng
        self.pred_thresh = pred_thresh
        self.rule = rule if rule is not None else sample_next_clicks

    def __call__(self, pred_probs: torch.Tensor, gt: torch.Tensor) -> ClickBatch:
        clicks = self.rule(pred_probs, gt, self.rng, self.pred_thresh)
        return ClickBatch.from_clicks(clicks, pred_probs.device)
