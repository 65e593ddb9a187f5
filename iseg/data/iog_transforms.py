"""IOG's training augmentation (s2m_iog_forte.md §2.3): horizontal flip, then rotation ±20° and scale
×[0.75, 1.25] about the image centre with a zero border (masks nearest-neighbour), before the
crop around the object (:class:`~iseg.interaction.iog_sampler.IOGSampler`). The reference warps
images with bicubic interpolation; here bilinear (albumentations' Affine default), a deliberate
small difference. Validation: no augmentation (the reference's test transform)."""

from __future__ import annotations

import albumentations as A
import cv2


def iog_train_augmentator(rotate: float = 20.0, scale: tuple[float, float] = (0.75, 1.25)) -> A.Compose:
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(scale=tuple(scale), rotate=(-rotate, rotate), border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=1.0),
        ],
        p=1.0,
    )
