"""``ScribbleRobot``: the scribble protocol's simulated user (S2M's skeleton robot on the errors).

After each prediction the robot looks at the error regions: positive strokes along the skeleton
of the false negatives (object pixels predicted as background), negative strokes along the skeleton
of the false positives (background predicted as object), with the same
:class:`~iseg.interaction.scribbles.skeleton.SkeletonRobot` that draws S2M's training scribbles
(half resolution, medial axis with a seeded tie-break, longest path per piece, Bézier-smoothed),
except that pieces shorter than ``min_nodes`` skeleton pixels are dropped (the DAVIS robot's rule).
Ignore pixels (gt == -1) are never errors. When errors remain but no stroke survives (thin error
bands vanish at half resolution), the round is a single-point stroke where the standard protocol
would click (:func:`~iseg.interaction.next_click.next_click`), so a round always has a prompt while
the prediction is not perfect. Each stroke is a :class:`~iseg.interaction.prompts.Scribble` of
integer (y, x) points, as a person's mouse path; the encoder draws them 3 px wide.

Deterministic: the same gt, predictions and ``seed`` give the same strokes.
"""

from __future__ import annotations

import numpy as np

from iseg.interaction.next_click import next_click, validate_gt
from iseg.interaction.prompts import Scribble
from iseg.interaction.scribbles.skeleton import SkeletonRobot


class ScribbleRobot:
    """Rounds of skeleton scribbles on the error regions (see the module docstring).

    Args:
        seed: the medial axis' tie-break seed.
        min_nodes: drop skeleton pieces with fewer pixels (at half resolution).
        max_strokes: at most this many strokes per round, the longest first (None: all).
    """

    def __init__(self, seed: int = 0, min_nodes: int = 4, max_strokes: int | None = None) -> None:
        if min_nodes < 0:
            raise ValueError(f"ScribbleRobot: min_nodes must be >= 0, got {min_nodes}")
        if max_strokes is not None and max_strokes < 1:
            raise ValueError(f"ScribbleRobot: max_strokes must be >= 1 or None, got {max_strokes}")
        self.seed = seed
        self.max_strokes = max_strokes
        self.skeleton = SkeletonRobot(min_nodes=min_nodes)
        self._gt: np.ndarray | None = None
        self._history: list[Scribble] = []

    def start(self, gt: np.ndarray) -> None:
        self._gt = validate_gt(gt)
        self._history = []

    @property
    def history(self) -> list[Scribble]:
        return list(self._history)

    def next_round(self, pred_mask: np.ndarray) -> list[Scribble]:
        """The strokes after seeing the binary ``pred_mask`` (H, W): positives first; [] when no error is left."""
        if self._gt is None:
            raise RuntimeError("call start(gt) before asking the robot for scribbles")
        pred = np.asarray(pred_mask, dtype=bool)
        if pred.shape != self._gt.shape:
            raise ValueError(f"pred_mask has shape {pred.shape}, expected the gt shape {self._gt.shape}")
        false_neg = (self._gt == 1) & ~pred
        false_pos = (self._gt == 0) & pred
        strokes = [
            (len(path), Scribble(tuple(map(tuple, path)), positive))
            for positive, error in ((True, false_neg), (False, false_pos))
            for path in self._strokes(error)
        ]
        if self.max_strokes is not None:
            strokes = sorted(strokes, key=lambda item: -item[0])[: self.max_strokes]  # stable: positives first on ties
            strokes = sorted(strokes, key=lambda item: not item[1].is_positive)
        scribbles = [scribble for _, scribble in strokes]
        if not scribbles and (false_neg.any() or false_pos.any()):
            click = next_click(self._gt, pred, [])
            scribbles = [Scribble(((click.y, click.x),), click.is_positive)]
        self._history.extend(scribbles)
        return scribbles

    def next(self, pred_mask: np.ndarray) -> Scribble:
        """One stroke (the round's longest) for loops that take one prompt at a time."""
        strokes = self.next_round(pred_mask)
        if not strokes:
            raise ValueError("the prediction has no error left: no scribble to draw")
        longest = max(strokes, key=lambda s: len(s.points))
        self._history = self._history[: len(self._history) - len(strokes)] + [longest]
        return longest

    def _strokes(self, error: np.ndarray) -> list[np.ndarray]:
        """Integer (y, x) point paths along the error's skeleton, consecutive duplicates removed."""
        if not error.any():
            return []
        paths = []
        for curve in self.skeleton.paths(error, self.seed):
            points = np.round(curve).astype(np.int64)
            keep = np.ones(len(points), bool)
            keep[1:] = np.any(points[1:] != points[:-1], axis=1)
            paths.append(points[keep])
        return paths
