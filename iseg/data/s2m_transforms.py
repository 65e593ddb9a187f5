"""S2M's training augmentation (reference §1.3), written for albumentations 2.

The reference applies torchvision transforms to the image and the mask with one seed:
RandomAffine (rotation +-20 degrees, x-shear +-10 degrees, scale (0.8, 1.0) for LVIS and (0.8, 1.25)
for the static sets; bilinear with the fill (124, 116, 104) for the image, nearest with 0 for the
mask) -> shorter side resized to 480 -> random 480 crop, padded when needed -> horizontal flip;
then, on the image only, ColorJitter(brightness 0.1, contrast 0.03, saturation 0.03) and
RandomGrayscale(0.05). The draws differ from torchvision's (another library, one generator), so
tests compare behaviour, not pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2

from iseg.data.transforms import PaddedRandomCrop, _crop_size

IMAGE_FILL = (124, 116, 104)
LVIS_SCALE = (0.8, 1.0)
STATIC_SCALE = (0.8, 1.25)


def s2m_train_augmentator(crop_size: Sequence[int] = (480, 480), scale: Sequence[float] = STATIC_SCALE) -> A.Compose:
    """The reference pipeline at ``crop_size`` (the shorter side is resized to its smaller value)."""
    height, width = _crop_size(crop_size)
    low, high = (float(v) for v in scale)
    if not 0 < low <= high:
        raise ValueError(f"scale must satisfy 0 < low <= high, got {tuple(scale)}")
    return A.Compose(
        [
            A.Affine(
                scale=(low, high),
                rotate=(-20, 20),
                shear={"x": (-10, 10), "y": (0, 0)},
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_CONSTANT,
                fill=IMAGE_FILL,
                fill_mask=0,
                p=1.0,
            ),
            A.SmallestMaxSize(max_size=min(height, width), interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST),
            PaddedRandomCrop(height=height, width=width),
            A.HorizontalFlip(p=0.5),
            A.ColorJitter(brightness=(0.9, 1.1), contrast=(0.97, 1.03), saturation=(0.97, 1.03), hue=(0.0, 0.0), p=1.0),
            A.ToGray(p=0.05),
        ],
        p=1.0,
    )
