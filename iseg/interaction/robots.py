"""Robots: simulated users that choose the next prompt from (ground truth, prediction, history).

The evaluation protocol, validation during training and the benchmarks all take a robot, so a
method with another kind of interaction (scribbles, boxes) brings its robot and reuses the loop.
A robot is started once per sample (``start(gt)``) and then asked for one prompt after each
prediction (``next(pred_mask)``; the first call gets an all-false mask). It must be
deterministic given the ground truth, the predictions and its own seed.

A robot that gives several prompts per round (a round of scribbles on every error region, a box
and a click) also has ``next_round(pred_mask) -> list[Prompt]``; the protocol asks for rounds with
:func:`next_round`, which is ``[robot.next(pred_mask)]`` for a one-prompt robot such as the clicker.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from iseg.interaction.next_click import Clicker
from iseg.interaction.prompts import Click, Prompt


class Robot(Protocol):
    def start(self, gt: np.ndarray) -> None:
        """Begin a new sample: ``gt`` is (H, W) with 1 object, 0 background, -1 ignore."""

    def next(self, pred_mask: np.ndarray) -> Prompt:
        """The prompt the user gives after seeing the binary ``pred_mask`` (H, W)."""

    @property
    def history(self) -> list[Prompt]:
        """The prompts given so far in this sample."""


class ClickRobot:
    """The standard protocol's user: a click at the interior point farthest from the error boundary
    of the larger error region (RITM's ``Clicker``, :class:`~iseg.interaction.next_click.Clicker`)."""

    def __init__(self) -> None:
        self._clicker: Clicker | None = None

    def start(self, gt: np.ndarray) -> None:
        self._clicker = Clicker(gt)

    def next(self, pred_mask: np.ndarray) -> Click:
        if self._clicker is None:
            raise RuntimeError("call start(gt) before asking the robot for a click")
        return self._clicker.make_next_click(pred_mask)

    @property
    def history(self) -> list[Click]:
        return list(self._clicker.clicks) if self._clicker is not None else []


def next_round(robot: Robot, pred_mask: np.ndarray) -> list[Prompt]:
    """The prompts of the robot's next round after ``pred_mask``: its ``next_round`` when it has one
    (possibly empty when nothing is left to correct), else its one ``next`` prompt."""
    several = getattr(robot, "next_round", None)
    return list(several(pred_mask)) if several is not None else [robot.next(pred_mask)]
