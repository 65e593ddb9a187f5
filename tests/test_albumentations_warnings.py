"""Every augmentation pipeline runs on albumentations 2 without a single warning, with known seeded draws.

albumentations 2 silently ignores renamed 1.x arguments (with only a warning) and skips 1.x hooks
of custom transforms (ecosystem.md §4.3), so any warning or log record here is a failure.
"""

from __future__ import annotations

import inspect
import logging
import warnings

import numpy as np
import pytest

import iseg.data.transforms as transforms
from iseg.data.transforms import UniformRandomResize

FACTORIES = sorted(
    (name, fn) for name, fn in inspect.getmembers(transforms, inspect.isfunction) if name.endswith("_augmentator")
)
HEIGHT, WIDTH = 100, 150


def _coordinates(layers: int = 1) -> np.ndarray:
    """Mask whose pixel (y, x) of layer k holds k·H·W + y·W + x + 1: any output pixel names its source."""
    base = (np.arange(HEIGHT * WIDTH, dtype=np.int32) + 1).reshape(HEIGHT, WIDTH)
    return np.stack([base + k * HEIGHT * WIDTH for k in range(layers)], axis=2)


def _source(value: int) -> tuple[int, int] | None:
    return None if value == 0 else divmod((int(value) - 1) % (HEIGHT * WIDTH), WIDTH)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def no_warnings():
    """Warnings become errors; albumentations' loggers are recorded and must stay silent."""
    handler = _Records()
    loggers = [logging.getLogger(), logging.getLogger("albumentations")]
    for logger in loggers:
        logger.addHandler(handler)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield
    for logger in loggers:
        logger.removeHandler(handler)
    noisy = [r for r in handler.records if r.levelno >= logging.WARNING]
    assert not noisy, [f"{r.name}: {r.getMessage()}" for r in noisy]


def test_a_renamed_1x_argument_is_caught() -> None:
    """The guard itself: albumentations 2 only warns about ``value=`` (1.x) and pads with its default."""
    import albumentations as A

    with warnings.catch_warnings(), pytest.raises(Warning, match="value"):
        warnings.simplefilter("error")
        A.PadIfNeeded(min_height=8, min_width=8, value=0)


def test_every_factory_is_covered() -> None:
    names = [name for name, _ in FACTORIES]
    assert {"coco_lvis_train_augmentator", "coco_lvis_val_augmentator", "sbd_train_augmentator"} <= set(names)


@pytest.mark.parametrize(("name", "factory"), FACTORIES, ids=[name for name, _ in FACTORIES])
def test_factory_builds_and_runs_without_warnings(name: str, factory, no_warnings) -> None:
    rng = np.random.default_rng(0)
    pipeline = factory(crop_size=(64, 96))
    pipeline.set_random_seed(0)
    for size in ((HEIGHT, WIDTH), (40, 50)):  # larger and smaller than the crop: pad path too
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        masks = rng.integers(0, 5, (*size, 2)).astype(np.uint8)
        for _ in range(10):
            out = pipeline(image=image, mask=masks)
            assert out["image"].shape == (64, 96, 3) and out["image"].dtype == np.uint8
            assert out["mask"].shape == (64, 96, 2) and set(np.unique(out["mask"])) <= set(range(5))


def test_custom_transforms_build_without_warnings(no_warnings) -> None:
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for transform in (
        UniformRandomResize(scale_range=(0.5, 0.6)),
        transforms.PaddedRandomCrop(height=120, width=90),
        transforms.SaturatedRGBShift(r_shift_limit=10, g_shift_limit=10, b_shift_limit=10, p=1.0),
    ):
        assert transform(image=image, mask=_coordinates())["image"].dtype == np.uint8


def test_uniform_random_resize_really_runs() -> None:
    """The 1.x hook would be skipped silently, leaving sizes unchanged: sizes must follow the drawn scale."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    sizes = set()
    for seed in range(8):
        resize = UniformRandomResize(scale_range=(0.5, 0.8))
        resize.set_random_seed(seed)
        height, width = resize(image=image)["image"].shape[:2]
        assert 50 <= height <= 80 and abs(width - 1.5 * height) <= 1  # one scale on both axes, rounded
        sizes.add((height, width))
    assert len(sizes) > 4


@pytest.mark.parametrize(
    ("factory", "seed", "corners"),
    [
        # (top-left, top-right, bottom-left, bottom-right) source pixels of a 64×96 crop
        ("coco_lvis_train_augmentator", 0, [(43, 57), (43, 130), (91, 57), (91, 130)]),  # ×1.31, no flip
        ("coco_lvis_train_augmentator", 7, [(10, 141), (10, 42), (76, 141), (76, 42)]),  # ×0.95, h-flip
        ("sbd_train_augmentator", 0, [(38, 51), (38, 132), (92, 51), (92, 132)]),
    ],
)
def test_seeded_pipeline_gives_known_scale_flip_and_crop(factory: str, seed: int, corners) -> None:
    """Golden draws for albumentations 2.0.8: the same seed must keep giving the same geometry."""
    pipeline = getattr(transforms, factory)(crop_size=(64, 96))
    pipeline.set_random_seed(seed)
    mask = pipeline(image=np.zeros((HEIGHT, WIDTH, 3), np.uint8), mask=_coordinates())["mask"][:, :, 0]
    assert [_source(mask[y, x]) for y, x in ((0, 0), (0, -1), (-1, 0), (-1, -1))] == corners
