"""Augmentation pipelines: albumentations 2 without warnings, seeded parameters, nearest masks."""

from __future__ import annotations

import random
import warnings

import albumentations as A
import cv2
import numpy as np
import pytest

from iseg.data.transforms import (
    PaddedRandomCrop,
    SaturatedRGBShift,
    UniformRandomResize,
    coco_lvis_train_augmentator,
    coco_lvis_val_augmentator,
    sbd_train_augmentator,
    sbd_val_augmentator,
)

BUILDERS = [coco_lvis_train_augmentator, coco_lvis_val_augmentator, sbd_train_augmentator, sbd_val_augmentator]


def _coordinate_mask(height: int, width: int, layers: int = 2) -> np.ndarray:
    """Every pixel holds a distinct value (row * width + col + 1) per layer, so crops and warps are traceable."""
    base = (np.arange(height * width, dtype=np.int32) + 1).reshape(height, width)
    return np.stack([base + k * height * width for k in range(layers)], axis=2)


@pytest.mark.parametrize("builder", BUILDERS)
def test_pipelines_build_and_run_without_any_warning(builder) -> None:
    image = np.random.default_rng(0).integers(0, 256, (150, 210, 3), dtype=np.uint8)
    masks = np.random.default_rng(1).integers(0, 6, (150, 210, 3)).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipeline = builder(crop_size=(96, 128))
        pipeline.set_random_seed(0)
        for _ in range(20):
            out = pipeline(image=image, mask=masks)
            assert out["image"].shape == (96, 128, 3) and out["image"].dtype == np.uint8
            assert out["mask"].shape == (96, 128, 3) and out["mask"].dtype == np.uint8
            assert set(np.unique(out["mask"])) <= set(range(6)), "masks must stay nearest-neighbour"


def test_default_crop_is_the_papers() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    out = coco_lvis_val_augmentator()(image=image, mask=np.zeros((200, 300, 1), np.uint8))
    assert out["image"].shape == (320, 480, 3) and out["mask"].shape == (320, 480, 1)


@pytest.mark.parametrize("seed", [0, 7, 123])
def test_uniform_random_resize_draws_one_scale_and_rounds(seed: int) -> None:
    """The scale is the pipeline's first draw: proves get_params_dependent_on_data really runs."""
    image = np.random.default_rng(seed).integers(0, 256, (100, 150, 3), dtype=np.uint8)
    masks = _coordinate_mask(100, 150)
    out = A.Compose([UniformRandomResize(scale_range=(0.75, 1.40))], p=1.0, seed=seed)(image=image, mask=masks)
    scale = random.Random(seed).uniform(0.75, 1.40)
    size = (round(100 * scale), round(150 * scale))
    assert out["image"].shape[:2] == size and out["mask"].shape == (*size, 2)
    assert np.array_equal(out["image"], cv2.resize(image, size[::-1], interpolation=cv2.INTER_LINEAR))
    assert np.array_equal(out["mask"], cv2.resize(masks, size[::-1], interpolation=cv2.INTER_NEAREST))
    assert set(np.unique(out["mask"])) <= set(np.unique(masks))


def test_seeded_pipeline_gives_known_scale_and_crop() -> None:
    """Golden values for albumentations 2.0.8 seeding (pipeline seed 0 and 7)."""
    image = np.zeros((100, 150, 3), np.uint8)
    masks = _coordinate_mask(100, 150, layers=1)
    for seed, (top, left) in ((0, (31, 41)), (7, (11, 8))):
        pipeline = coco_lvis_val_augmentator(crop_size=(64, 96))
        pipeline.set_random_seed(seed)
        corner = int(pipeline(image=image, mask=masks)["mask"][0, 0, 0]) - 1
        assert divmod(corner, 150) == (top, left)
    sizes = [
        A.Compose([UniformRandomResize(scale_range=(0.75, 1.40))], p=1.0, seed=seed)(image=image)["image"].shape[:2]
        for seed in (0, 7)
    ]
    assert sizes == [(130, 195), (96, 144)]


def test_pad_is_centred_with_zeros() -> None:
    image = np.full((40, 50, 3), 200, np.uint8)
    masks = np.full((40, 50, 1), 3, np.uint8)
    out = coco_lvis_val_augmentator(crop_size=(60, 70))(image=image, mask=masks)
    assert (out["image"][:10] == 0).all() and (out["image"][10:50, 10:60] == 200).all()
    assert (out["mask"][:10] == 0).all() and (out["mask"][10:50, 10:60] == 3).all()


def test_sbd_flip_matches_legacy_flip_frequencies() -> None:
    """1.x Flip(): p=0.5, then h / v / both with 1/3 each; identity otherwise."""
    flip = sbd_train_augmentator().transforms[1]
    flip.set_random_seed(0)
    image = np.arange(4, dtype=np.uint8).reshape(2, 2, 1).repeat(3, axis=2)
    outcomes = {"none": 0, "h": 0, "v": 0, "both": 0}
    names = {(0, 1, 2, 3): "none", (1, 0, 3, 2): "h", (2, 3, 0, 1): "v", (3, 2, 1, 0): "both"}
    for _ in range(3000):
        outcomes[names[tuple(flip(image=image)["image"][:, :, 0].ravel())]] += 1
    assert outcomes["none"] / 3000 == pytest.approx(0.5, abs=0.03)
    for key in ("h", "v", "both"):
        assert outcomes[key] / 3000 == pytest.approx(1 / 6, abs=0.025)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="scale_range"):
        UniformRandomResize(scale_range=(1.2, 0.8))
    with pytest.raises(ValueError, match="crop_size"):
        coco_lvis_train_augmentator(crop_size=(0, 480))


@pytest.mark.parametrize("seed", range(6))
def test_padded_random_crop_equals_pad_if_needed_then_random_crop(seed: int) -> None:
    """Same draws, same pixels as the references' two transforms, for images smaller and larger than the crop."""
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(20, 90, 2))
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    masks = _coordinate_mask(height, width)
    crop = (int(rng.integers(10, 70)), int(rng.integers(10, 70)))
    reference = A.Compose(
        [
            A.PadIfNeeded(min_height=crop[0], min_width=crop[1], border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
            A.RandomCrop(height=crop[0], width=crop[1]),
        ],
        seed=seed,
    )
    fused = A.Compose([PaddedRandomCrop(height=crop[0], width=crop[1])], seed=seed)
    for _ in range(5):
        expected, got = reference(image=image, mask=masks), fused(image=image, mask=masks)
        assert np.array_equal(expected["image"], got["image"]) and np.array_equal(expected["mask"], got["mask"])


def test_saturated_rgb_shift_equals_albumentations_rgb_shift() -> None:
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    image[0, :3] = (0, 255, 5)  # saturation at both ends
    reference = A.Compose([A.RGBShift(r_shift_limit=10, g_shift_limit=10, b_shift_limit=10, p=0.75)], seed=3)
    fast = A.Compose([SaturatedRGBShift(r_shift_limit=10, g_shift_limit=10, b_shift_limit=10, p=0.75)], seed=3)
    changed = 0
    for _ in range(60):
        expected, got = reference(image=image)["image"], fast(image=image)["image"]
        assert np.array_equal(expected, got)
        changed += not np.array_equal(got, image)
    assert 30 < changed < 60, "p=0.75 must be kept"
    grey = np.zeros((4, 4), np.uint8)  # not 3 channels: albumentations' own path
    assert SaturatedRGBShift(p=1.0)(image=grey)["image"].shape == (4, 4)
