"""The embedded default dataset: procedurally drawn shapes, so training and tests need no download.

Each image is a noisy, textured background with 2–5 shapes (ellipses, star-shaped polygons, rings,
rotated rounded rectangles), each filled with its own colour and pattern (flat, stripes, checker,
gradient). Later shapes occlude earlier ones; an instance is the visible part of a shape, and
shapes are redrawn until every instance keeps a usable area. Sometimes a thin band along one
instance's outline is marked "ignore" (like the VOC boundary label), unless that leaves some
instance with less than half the minimum area. Sample ``index`` of a split
is a pure function of (``base_seed``, split, index), so every process sees the same data.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from iseg.data.sample import InstanceSample
from iseg.data.source import SampleSource

SPLITS = {"train": 0, "val": 1}
IGNORE_VALUE = 255
_KERNEL = np.ones((3, 3), np.uint8)


class SyntheticShapesSource(SampleSource):
    """Shapes-on-texture instance segmentation, generated on the fly.

    Args:
        split: 'train' or 'val' (different content seeds).
        num_samples: number of distinct images.
        image_size: (height, width).
        num_objects: inclusive (min, max) instances per image.
        ignore_prob: chance that an image has an ignore band.
        base_seed: content seed shared by both splits.
        object_scale: (min, max) shape radius as a fraction of the shorter image side.
        textured: patterned fills and a blotchy, striped background; False gives flat
            colours on a smooth background (an easier task, for quick runs).
    """

    def __init__(
        self,
        split: str = "train",
        num_samples: int = 1000,
        image_size: Sequence[int] = (160, 240),
        num_objects: Sequence[int] = (2, 5),
        ignore_prob: float = 0.25,
        base_seed: int = 0,
        object_scale: Sequence[float] = (0.12, 0.3),
        textured: bool = True,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        height, width = (int(v) for v in image_size)
        if min(height, width) < 32:
            raise ValueError(f"image_size must be at least 32×32, got {tuple(image_size)}")
        low, high = (int(v) for v in num_objects)
        if not 1 <= low <= high:
            raise ValueError(f"num_objects must be (min, max) with 1 <= min <= max, got {tuple(num_objects)}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.split = split
        self._num_samples = int(num_samples)
        self.image_size = (height, width)
        self.num_objects = (low, high)
        self.ignore_prob = ignore_prob
        self.base_seed = base_seed
        low_scale, high_scale = (float(v) for v in object_scale)
        if not 0 < low_scale <= high_scale <= 0.5:
            raise ValueError(f"object_scale must be (min, max) with 0 < min <= max <= 0.5, got {tuple(object_scale)}")
        self.object_scale = (low_scale, high_scale)
        self.textured = textured

    def __len__(self) -> int:
        return self._num_samples

    def get_sample(self, index: int, rng: np.random.Generator | None = None) -> InstanceSample:
        if not 0 <= index < self._num_samples:
            raise IndexError(f"synthetic {self.split} index {index} out of range [0, {self._num_samples})")
        # the content is a pure function of (base_seed, split, index): the dataset's rng is not used
        content_rng = np.random.default_rng(np.random.SeedSequence([self.base_seed, SPLITS[self.split], index]))
        image, labels = render_shapes(
            content_rng, self.image_size, self.num_objects, self.ignore_prob, self.object_scale, self.textured
        )
        name = f"{self.split}_{index:06d}"
        return InstanceSample.from_label_map(image, labels, ignore_values=[IGNORE_VALUE], name=name)


def render_shapes(
    rng: np.random.Generator,
    image_size: tuple[int, int],
    num_objects: tuple[int, int],
    ignore_prob: float,
    object_scale: tuple[float, float] = (0.12, 0.3),
    textured: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image: (uint8 H×W×3 RGB, uint8 H×W labels: 0 bg, k instance k, 255 ignore)."""
    height, width = image_size
    min_area = max(120, int(0.012 * height * width))
    target = int(rng.integers(num_objects[0], num_objects[1] + 1))
    shapes: list[np.ndarray] = []
    for _ in range(40 * target):
        if len(shapes) == target:
            break
        candidate = _random_shape(rng, height, width, object_scale)
        if _all_visible(shapes + [candidate], min_area):
            shapes.append(candidate)
    if len(shapes) < target:
        raise ValueError(
            f"could not place {target} shapes of >= {min_area} visible pixels in a {height}×{width} image; "
            "lower num_objects or enlarge image_size"
        )

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background_colour, image = _background(rng, yy, xx, textured)
    labels = np.zeros((height, width), np.uint8)
    for k, mask in enumerate(shapes, start=1):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        inside = mask[box]
        image[box][inside] = _fill(rng, yy[box], xx[box], background_colour, textured)[inside]
        labels[mask] = k
    image = cv2.GaussianBlur(image, (3, 3), 0.6) + 5.0 * rng.standard_normal(image.shape, dtype=np.float32)
    if shapes and rng.random() < ignore_prob:
        outline = labels == rng.integers(1, len(shapes) + 1)
        band = cv2.dilate(outline.astype(np.uint8), _KERNEL) > cv2.erode(outline.astype(np.uint8), _KERNEL)
        banded = np.where(band, np.uint8(IGNORE_VALUE), labels)
        if np.bincount(banded.ravel(), minlength=len(shapes) + 1)[1 : len(shapes) + 1].min() >= min_area // 2:
            labels = banded  # thin shapes would lose too much to the band: then no ignore region
    return np.clip(image, 0, 255).astype(np.uint8), labels


def _all_visible(shapes: list[np.ndarray], min_area: int) -> bool:
    """Every shape keeps >= min_area pixels when the later ones are drawn over it."""
    covered = np.zeros_like(shapes[0])
    for mask in reversed(shapes):
        if np.count_nonzero(mask & ~covered) < min_area:
            return False
        covered |= mask
    return True


def _random_shape(rng: np.random.Generator, height: int, width: int, object_scale: tuple[float, float]) -> np.ndarray:
    canvas = np.zeros((height, width), np.uint8)
    radius = rng.uniform(*object_scale) * min(height, width)
    cy, cx = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
    angle = rng.uniform(0, 360)
    kind = rng.integers(4)
    if kind == 0:  # ellipse
        axes = (int(radius), int(radius * rng.uniform(0.4, 1.0)))
        cv2.ellipse(canvas, (int(cx), int(cy)), axes, angle, 0, 360, 1, -1)
    elif kind == 1:  # star-shaped polygon
        count = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, count))
        radii = radius * rng.uniform(0.55, 1.0, count)
        cv2.fillPoly(canvas, [_points(cx + radii * np.cos(angles), cy + radii * np.sin(angles))], 1)
    elif kind == 2:  # ring
        outer = (int(radius), int(radius * rng.uniform(0.6, 1.0)))
        thickness = max(4, int(radius * rng.uniform(0.3, 0.5)))
        cv2.ellipse(canvas, (int(cx), int(cy)), outer, angle, 0, 360, 1, -1)
        inner = (max(1, outer[0] - thickness), max(1, outer[1] - thickness))
        cv2.ellipse(canvas, (int(cx), int(cy)), inner, angle, 0, 360, 0, -1)
    else:  # rotated rounded rectangle
        half_h, half_w = radius * rng.uniform(0.4, 0.9), radius
        corner = min(half_h, half_w) * rng.uniform(0.2, 0.6)
        ys, xs = _rounded_rect(half_h, half_w, corner)
        theta = np.deg2rad(angle)
        px = cx + xs * np.cos(theta) - ys * np.sin(theta)
        py = cy + xs * np.sin(theta) + ys * np.cos(theta)
        cv2.fillPoly(canvas, [_points(px, py)], 1)
    return canvas.astype(bool)


def _points(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return np.round(np.stack([xs, ys], axis=1)).astype(np.int32)


def _rounded_rect(half_h: float, half_w: float, corner: float) -> tuple[np.ndarray, np.ndarray]:
    """Outline (ys, xs) of an axis-aligned rounded rectangle centred at 0."""
    ys, xs = [], []
    arc = np.linspace(0, np.pi / 2, 8)
    for sy, sx, start in ((1, 1, 0.0), (1, -1, np.pi / 2), (-1, -1, np.pi), (-1, 1, 1.5 * np.pi)):
        cy, cx = sy * (half_h - corner), sx * (half_w - corner)
        ys.append(cy + corner * np.sin(arc + start))
        xs.append(cx + corner * np.cos(arc + start))
    return np.concatenate(ys), np.concatenate(xs)


def _background(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, textured: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(mean colour, float32 H×W×3): colour + low-frequency blotches + gradient + faint stripes
    (colour + gentle gradient only when not ``textured``)."""
    height, width = yy.shape
    colour = rng.uniform(40, 215, 3).astype(np.float32)
    if not textured:
        ramp = rng.uniform(-1, 1) * yy / height + rng.uniform(-1, 1) * xx / width
        return colour, colour + ramp[:, :, None] * rng.normal(0, 10, 3).astype(np.float32)
    grid = rng.normal(0.0, 28.0, (int(rng.integers(3, 7)), int(rng.integers(3, 7)), 3)).astype(np.float32)
    image = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC) + colour
    ramp = rng.uniform(-1, 1) * yy / height + rng.uniform(-1, 1) * xx / width
    theta, period = rng.uniform(0, np.pi), rng.uniform(6, 20)
    stripes = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period) * rng.uniform(0, 10)
    image += ramp[:, :, None] * rng.normal(0, 20, 3).astype(np.float32) + stripes[:, :, None].astype(np.float32)
    return colour, image


def _fill(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, avoid: np.ndarray, textured: bool = True) -> np.ndarray:
    """Float32 h×w×3 pattern over the pixel grid (yy, xx), in a colour ~60+ RGB units from ``avoid``."""
    for _ in range(20):
        primary = rng.uniform(0, 255, 3).astype(np.float32)
        if np.linalg.norm(primary - avoid) > 60:
            break
    secondary = np.clip(primary + rng.normal(0, 45, 3), 0, 255).astype(np.float32)
    pattern = rng.integers(4) if textured else 0
    if pattern == 0:  # flat
        weight = np.zeros(yy.shape, np.float32)
    elif pattern == 1:  # stripes
        theta, period = rng.uniform(0, np.pi), rng.uniform(4, 14)
        weight = (np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period) > 0).astype(np.float32)
    elif pattern == 2:  # checker
        cell = int(rng.integers(4, 12))
        weight = ((yy // cell + xx // cell) % 2).astype(np.float32)
    else:  # gradient
        theta = rng.uniform(0, 2 * np.pi)
        ramp = xx * np.cos(theta) + yy * np.sin(theta)
        weight = ((ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)).astype(np.float32)
    weight = weight[:, :, None]
    return primary * (1 - weight) + secondary * weight
