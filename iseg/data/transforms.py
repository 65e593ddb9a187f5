"""Augmentation pipelines of the reference training recipes (§2.7), written for albumentations 2.

The references pin albumentations 0.5–1.3; three of their idioms change meaning in 2.x and are
translated here: ``Flip()`` (removed) becomes a one-of horizontal / vertical / both flips,
``ShiftScaleRotate`` (deprecated) becomes ``Affine`` with the same shift and rotation ranges, and
``RandomRotate90`` keeps its old default p=0.5 (2.x defaults to 1). Masks are always resized and
warped nearest-neighbour, so encoded instance values survive.

Two albumentations transforms are replaced by subclasses that draw the same parameters and give
the same pixels for less work (the data pipeline must keep GPUs fed): ``PadIfNeeded`` +
``RandomCrop`` by ``PaddedRandomCrop``, ``RGBShift`` by ``SaturatedRGBShift``; tests compare
them with the originals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.core.transforms_interface import BaseTransformInitSchema
from albumentations.core.type_definitions import Targets
from pydantic import model_validator

DEFAULT_CROP_SIZE = (320, 480)


class UniformRandomResize(A.DualTransform):
    """Resize by one random factor s ~ U(scale_range) on both axes, to round(H·s) × round(W·s).

    The size is computed in ``get_params_dependent_on_data`` (albumentations 2 silently skips the
    1.x ``get_params_dependent_on_targets`` hook, which the reference relies on).
    """

    _targets = (Targets.IMAGE, Targets.MASK)

    class InitSchema(BaseTransformInitSchema):
        scale_range: tuple[float, float]
        interpolation: int
        mask_interpolation: int

        @model_validator(mode="after")
        def _check_range(self) -> UniformRandomResize.InitSchema:
            low, high = self.scale_range
            if not 0 < low <= high:
                raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
            return self

    def __init__(
        self,
        scale_range: tuple[float, float] = (0.9, 1.1),
        interpolation: int = cv2.INTER_LINEAR,
        mask_interpolation: int = cv2.INTER_NEAREST,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        self.scale_range = tuple(scale_range)
        self.interpolation = interpolation
        self.mask_interpolation = mask_interpolation

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width = params["shape"][:2]
        scale = self.py_random.uniform(*self.scale_range)
        return {"scale": scale, "new_height": int(round(height * scale)), "new_width": int(round(width * scale))}

    def apply(self, img: np.ndarray, new_height: int, new_width: int, **params: Any) -> np.ndarray:
        return _resize(img, new_height, new_width, self.interpolation)

    def apply_to_mask(self, mask: np.ndarray, new_height: int, new_width: int, **params: Any) -> np.ndarray:
        return _resize(mask, new_height, new_width, self.mask_interpolation)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale_range", "interpolation", "mask_interpolation")


def _resize(array: np.ndarray, height: int, width: int, interpolation: int) -> np.ndarray:
    out = cv2.resize(array, (width, height), interpolation=interpolation)
    return out[:, :, None] if array.ndim == 3 and out.ndim == 2 else out


def _crop_size(crop_size: Sequence[int]) -> tuple[int, int]:
    height, width = (int(v) for v in crop_size)
    if height < 1 or width < 1:
        raise ValueError(f"crop_size must be two positive ints (height, width), got {tuple(crop_size)}")
    return height, width


def _pad_and_crop(crop_size: Sequence[int]) -> list[A.BasicTransform]:
    """The references' ``PadIfNeeded`` (centred, zeros) + ``RandomCrop``, as one transform."""
    height, width = _crop_size(crop_size)
    return [PaddedRandomCrop(height=height, width=width)]


class PaddedRandomCrop(A.RandomCrop):
    """``RandomCrop(pad_if_needed=True)`` with centred constant padding, without padding the whole image.

    Same parameters and draws as ``PadIfNeeded(border_mode=constant, position='center')``
    followed by ``RandomCrop`` (both pad by ``get_padding_params``, and the crop draws
    ``h_start``, ``w_start`` in the padded frame), hence the same pixels; but only the crop window
    is materialised: a fill-valued canvas with the visible part of the image copied in.
    """

    def __init__(self, height: int, width: int, fill: float = 0.0, fill_mask: float = 0.0, p: float = 1.0) -> None:
        super().__init__(
            height=height,
            width=width,
            pad_if_needed=True,
            pad_position="center",
            border_mode=cv2.BORDER_CONSTANT,
            fill=fill,
            fill_mask=fill_mask,
            p=p,
        )

    def apply(self, img: np.ndarray, crop_coords: tuple[int, int, int, int], **params: Any) -> np.ndarray:
        return _crop_padded(img, crop_coords, params.get("pad_params"), self.fill)

    def apply_to_mask(self, mask: np.ndarray, crop_coords: tuple[int, int, int, int], **params: Any) -> np.ndarray:
        return _crop_padded(mask, crop_coords, params.get("pad_params"), self.fill_mask)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("height", "width", "fill", "fill_mask")


def _crop_padded(
    array: np.ndarray, crop_coords: tuple[int, int, int, int], pad: dict[str, int] | None, fill: float
) -> np.ndarray:
    """The window ``crop_coords`` (x0, y0, x1, y1, padded frame) of ``array`` padded by ``pad`` with ``fill``."""
    x0, y0, x1, y1 = crop_coords
    if pad is None:
        return array[y0:y1, x0:x1]
    top, left = pad["pad_top"], pad["pad_left"]
    height, width = array.shape[:2]
    out = np.full((y1 - y0, x1 - x0, *array.shape[2:]), fill, dtype=array.dtype)
    src_y0, src_y1 = max(y0 - top, 0), min(y1 - top, height)
    src_x0, src_x1 = max(x0 - left, 0), min(x1 - left, width)
    if src_y0 < src_y1 and src_x0 < src_x1:
        dst_y, dst_x = src_y0 + top - y0, src_x0 + left - x0
        out[dst_y : dst_y + src_y1 - src_y0, dst_x : dst_x + src_x1 - src_x0] = array[src_y0:src_y1, src_x0:src_x1]
    return out


def _colour_jitter() -> list[A.BasicTransform]:
    return [
        A.RandomBrightnessContrast(brightness_limit=(-0.25, 0.25), contrast_limit=(-0.15, 0.4), p=0.75),
        SaturatedRGBShift(r_shift_limit=10, g_shift_limit=10, b_shift_limit=10, p=0.75),
    ]


class SaturatedRGBShift(A.RGBShift):
    """``A.RGBShift`` with the same draws and the same pixels, computed as saturated integer adds.

    On uint8 images albumentations truncates each channel's shift to an integer and applies it
    through a per-channel lookup table (three channel copies and a merge); ``cv2.add`` /
    ``cv2.subtract`` with the truncated shifts give identical pixels in one or two passes.
    Other dtypes and channel counts go through albumentations unchanged.
    """

    def apply(self, img: np.ndarray, noise_map: np.ndarray, **params: Any) -> np.ndarray:
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or np.shape(noise_map) != (3,):
            return super().apply(img, noise_map, **params)
        shifts = np.trunc(np.asarray(noise_map, np.float64))
        up, down = np.maximum(shifts, 0), np.maximum(-shifts, 0)
        out = img
        if up.any():
            out = cv2.add(out, (*up.tolist(), 0.0))
        if down.any():
            out = cv2.subtract(out, (*down.tolist(), 0.0))
        return out if out is not img else img.copy()


def coco_lvis_train_augmentator(crop_size: Sequence[int] = DEFAULT_CROP_SIZE) -> A.Compose:
    """RITM ITER-M / FCFI train pipeline: resize ×[0.75, 1.40], h-flip, pad+crop, colour jitter."""
    return A.Compose(
        [
            UniformRandomResize(scale_range=(0.75, 1.40)),
            A.HorizontalFlip(p=0.5),
            *_pad_and_crop(crop_size),
            *_colour_jitter(),
        ],
        p=1.0,
    )


def coco_lvis_val_augmentator(crop_size: Sequence[int] = DEFAULT_CROP_SIZE) -> A.Compose:
    """COCO+LVIS validation: pad + random crop only."""
    return A.Compose(_pad_and_crop(crop_size), p=1.0)


def sbd_train_augmentator(crop_size: Sequence[int] = DEFAULT_CROP_SIZE) -> A.Compose:
    """RITM SBD train pipeline: resize ×[0.75, 1.25], flip, rot90, small shift/rotate, pad+crop, colour jitter."""
    return A.Compose(
        [
            UniformRandomResize(scale_range=(0.75, 1.25)),
            _legacy_flip(),
            A.RandomRotate90(p=0.5),
            A.Affine(
                translate_percent=(-0.03, 0.03),
                scale=1.0,
                rotate=(-3, 3),
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                p=0.75,
            ),
            *_pad_and_crop(crop_size),
            *_colour_jitter(),
        ],
        p=1.0,
    )


def sbd_val_augmentator(crop_size: Sequence[int] = DEFAULT_CROP_SIZE) -> A.Compose:
    """RITM SBD validation: resize ×[0.75, 1.25], pad + random crop."""
    return A.Compose([UniformRandomResize(scale_range=(0.75, 1.25)), *_pad_and_crop(crop_size)], p=1.0)


def _legacy_flip() -> A.BaseCompose:
    """albumentations 1.x ``Flip()``: with p=0.5, one of h-flip, v-flip, both (1/3 each)."""
    both = A.Sequential([A.HorizontalFlip(p=1.0), A.VerticalFlip(p=1.0)], p=1.0)
    return A.OneOf([A.HorizontalFlip(p=1.0), A.VerticalFlip(p=1.0), both], p=0.5)
