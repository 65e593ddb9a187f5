"""Prompts: what a user gives an interactive network (a click, a scribble, a box).

Every prompt owns its geometry. A view that moves pixels (zoom-in, flip, IOG's box crop) moves a
prompt with ``prompt.map(fn)``, where ``fn(y, x) -> (y, x)`` maps one point; it never looks inside
the prompt. ``anchor_points()`` lists the points a prompt covers (the click, the scribble's
points, the box corners), for rules that only need extents, such as zoom-in's region of interest.
Coordinates are pixels (row ``y``, column ``x``; floats after resizing).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

PointMap = Callable[[float, float], tuple[float, float]]
"""One point (y, x) in one frame -> the same point in another frame."""


@runtime_checkable
class Prompt(Protocol):
    """The interface views, robots and encoders rely on."""

    is_positive: bool

    def map(self, fn: PointMap) -> Prompt:
        """The same prompt with every point moved by ``fn``."""

    def anchor_points(self) -> list[tuple[float, float]]:
        """The (y, x) points that bound the prompt."""

    def within(self, height: int, width: int) -> Prompt:
        """The prompt to use on a ``height`` x ``width`` image, or a ValueError naming what lies outside."""


def _outside(prompt: Prompt, height: int, width: int) -> None:
    """ValueError naming the first point of ``prompt`` outside the image, if any."""
    for y, x in prompt.anchor_points():
        if not (0 <= y < height and 0 <= x < width):
            raise ValueError(f"{prompt!r}: point (y={y}, x={x}) lies outside the {height}x{width} image")


@dataclass(frozen=True)
class Click:
    """One user click at row ``y``, column ``x`` (pixels; floats after resizing)."""

    y: float
    x: float
    is_positive: bool

    def map(self, fn: PointMap) -> Click:
        y, x = fn(self.y, self.x)
        return Click(y, x, self.is_positive)

    def anchor_points(self) -> list[tuple[float, float]]:
        return [(self.y, self.x)]

    def within(self, height: int, width: int) -> Click:
        _outside(self, height, width)
        return self

    def scaled(self, scale_y: float, scale_x: float, offset_y: float = 0.0, offset_x: float = 0.0) -> Click:
        """The same click in another frame: ``(y - offset_y) * scale_y``, same for x."""
        return Click((self.y - offset_y) * scale_y, (self.x - offset_x) * scale_x, self.is_positive)


@dataclass(frozen=True)
class Scribble:
    """A stroke of (y, x) points drawn on the object (positive) or the background (negative).

    The points are a polyline as a person draws it (one point: a dot). On an image, points outside
    it are moved onto its border with a warning naming the stroke (:meth:`within`); a stroke with
    no point inside the image is refused.
    """

    points: tuple[tuple[float, float], ...]
    is_positive: bool

    def __post_init__(self) -> None:
        sign = "positive" if self.is_positive else "negative"
        try:
            points = [tuple(point) for point in self.points]
        except TypeError:
            raise TypeError(f"a {sign} scribble's points must be a sequence of (y, x) pairs, got {self.points!r}") from None
        if not points:
            raise ValueError(f"empty {sign} scribble: a scribble needs at least one (y, x) point")
        converted = []
        for index, point in enumerate(points):
            try:
                y, x = (float(v) for v in point)
            except (TypeError, ValueError):
                raise ValueError(f"{sign} scribble point {index} is {point!r}: expected a (y, x) pair of numbers") from None
            if not (math.isfinite(y) and math.isfinite(x)):
                raise ValueError(f"{sign} scribble point {index} is {point!r}: coordinates must be finite")
            converted.append((y, x))
        object.__setattr__(self, "points", tuple(converted))

    def map(self, fn: PointMap) -> Scribble:
        return Scribble(tuple(fn(y, x) for y, x in self.points), self.is_positive)

    def anchor_points(self) -> list[tuple[float, float]]:
        return list(self.points)

    def within(self, height: int, width: int) -> Scribble:
        """The stroke with points outside the image moved onto its border (warning), or a ValueError
        when no point lies inside."""
        inside = [0 <= y <= height - 1 and 0 <= x <= width - 1 for y, x in self.points]
        if all(inside):
            return self
        if not any(inside):
            raise ValueError(f"{self!r}: every point lies outside the {height}x{width} image")
        clipped = tuple((min(max(y, 0.0), height - 1.0), min(max(x, 0.0), width - 1.0)) for y, x in self.points)
        first = inside.index(False)
        warnings.warn(
            f"{'positive' if self.is_positive else 'negative'} scribble of {len(self.points)} points: "
            f"{inside.count(False)} outside the {height}x{width} image (first: point {first}, "
            f"{self.points[first]}) clipped to its border",
            stacklevel=3,
        )
        return Scribble(clipped, self.is_positive)


@dataclass(frozen=True)
class Box:
    """A box around the object: corners (y0, x0) top-left and (y1, x1) bottom-right, inclusive."""

    y0: float
    x0: float
    y1: float
    x1: float
    is_positive: bool = True

    def __post_init__(self) -> None:
        if self.y1 < self.y0 or self.x1 < self.x0:
            raise ValueError(f"box corners must be ordered (y0 <= y1, x0 <= x1), got {self}")

    def map(self, fn: PointMap) -> Box:
        (ya, xa), (yb, xb) = fn(self.y0, self.x0), fn(self.y1, self.x1)
        return Box(min(ya, yb), min(xa, xb), max(ya, yb), max(xa, xb), self.is_positive)

    def anchor_points(self) -> list[tuple[float, float]]:
        return [(self.y0, self.x0), (self.y1, self.x1)]

    def within(self, height: int, width: int) -> Box:
        _outside(self, height, width)
        return self


def box_from_corners(corners: Sequence[tuple[float, float]]) -> Box:
    """The box spanned by two opposite corners or by four corners, each (y, x), in any order."""
    if len(corners) not in (2, 4):
        raise ValueError(f"a box needs 2 opposite corners or 4 corners as (y, x), got {len(corners)}: {list(corners)}")
    ys, xs = [float(y) for y, _ in corners], [float(x) for _, x in corners]
    return Box(min(ys), min(xs), max(ys), max(xs))


@dataclass(frozen=True)
class InsideOutside:
    """IOG's prompt: a box around the object (its corners are the outside guidance) and one point on
    the object (the inside guidance). Refused when the box has zero area or the point leaves the box."""

    box: Box
    inside: Click

    def __post_init__(self) -> None:
        box, point = self.box, self.inside
        if box.y1 - box.y0 <= 0 or box.x1 - box.x0 <= 0:
            raise ValueError(
                f"the box (y0={box.y0:g}, x0={box.x0:g}, y1={box.y1:g}, x1={box.x1:g}) has zero area: "
                "give two opposite corners"
            )
        if not (box.y0 <= point.y <= box.y1 and box.x0 <= point.x <= box.x1):
            raise ValueError(
                f"the inside point (y={point.y:g}, x={point.x:g}) lies outside the box "
                f"(y0={box.y0:g}, x0={box.x0:g}, y1={box.y1:g}, x1={box.x1:g})"
            )
        if not point.is_positive:
            raise ValueError(f"the inside point must be positive, got {point!r}")

    @classmethod
    def from_corners(cls, corners: Sequence[tuple[float, float]], inside: tuple[float, float]) -> InsideOutside:
        """From 2 or 4 box corners and the inside point, all (y, x)."""
        return cls(box_from_corners(corners), Click(float(inside[0]), float(inside[1]), True))

    @property
    def is_positive(self) -> bool:
        return True

    def map(self, fn: PointMap) -> InsideOutside:
        return InsideOutside(self.box.map(fn), self.inside.map(fn))

    def within(self, height: int, width: int) -> InsideOutside:
        _outside(self, height, width)
        return self

    def anchor_points(self) -> list[tuple[float, float]]:
        return [*self.box.anchor_points(), *self.inside.anchor_points()]


def map_prompts(prompts: Sequence[Prompt], fn: PointMap) -> list[Prompt]:
    """Every prompt of a list moved by ``fn``."""
    return [prompt.map(fn) for prompt in prompts]


def check_prompt(prompt: object, height: int, width: int) -> Prompt:
    """The prompt to use on a ``height`` x ``width`` image (see each type's ``within``), else a clear error."""
    if not isinstance(prompt, Prompt):
        raise TypeError(f"expected a prompt (Click, Scribble, Box or InsideOutside), got {type(prompt).__name__}: {prompt!r}")
    return prompt.within(height, width)
