"""Images a person opens in the demo: decoded with Pillow, checked, and scaled to a working size.

The page works on an image whose longer side is at most ``max_side`` pixels (the network itself
sees at most 800, see :data:`iseg.inference.predict.MAX_SIZE`); a larger image is scaled down with
a note, and masks are exported at the original size. Files that are not images of a known type,
32-bit or float images and images above ``max_pixels`` are refused with a message naming the file.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

READABLE_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF", "PPM")
"""Pillow format names the demo opens (a GIF or multi-page TIFF gives its first frame)."""


class ImageRejected(ValueError):
    """The uploaded file cannot be used as an image; the message names the file and why."""


@dataclass(frozen=True)
class LoadedImage:
    """The working image (uint8 H x W x 3 RGB) and the size of the file it came from."""

    name: str
    rgb: np.ndarray
    original_size: tuple[int, int]  # (height, width) of the file
    note: str | None = None  # set when the image was scaled down

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])

    @property
    def downscaled(self) -> bool:
        return self.size != self.original_size


def load_image(data: bytes, name: str, max_side: int = 1600, max_pixels: int = 100_000_000) -> LoadedImage:
    """Decode an uploaded file to RGB, scaled so that its longer side is at most ``max_side``."""
    if not data:
        raise ImageRejected(f"{name}: the file is empty")
    known = ", ".join(READABLE_FORMATS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked below
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise ImageRejected(f"{name}: too large to open ({error})") from error
    except (UnidentifiedImageError, OSError) as error:
        raise ImageRejected(f"{name}: not an image type the demo reads ({known})") from error
    if image.format not in READABLE_FORMATS:
        raise ImageRejected(f"{name}: {image.format} images are not supported; use one of {known}")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejected(
            f"{name}: {width}x{height} is {width * height / 1e6:.0f} Mpx, more than the demo opens "
            f"({max_pixels / 1e6:.0f} Mpx); scale it down first"
        )
    if image.mode in ("I", "F", "I;32", "F;32"):
        raise ImageRejected(f"{name}: {image.mode} (32-bit) images are not supported; save it with 8 or 16 bits")
    file_format = image.format
    try:
        orientation = image.getexif().get(0x0112, 1)  # EXIF 5-8: shown rotated by 90 degrees
        original = (width, height) if orientation in (5, 6, 7, 8) else (height, width)
        if file_format == "JPEG" and max(width, height) > max_side:
            image.draft("RGB", _scaled(height, width, max_side)[::-1])  # decode at a reduced scale
        rgb = _to_rgb(ImageOps.exif_transpose(image))  # oriented as browsers and OpenCV show it
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageRejected(f"{name}: cannot decode the {file_format} data ({error})") from error
    target = _scaled(original[0], original[1], max_side)
    if rgb.shape[:2] != target:
        rgb = np.asarray(Image.fromarray(rgb).resize(target[::-1], Image.Resampling.BILINEAR))
    note = None
    if target != original:
        note = (
            f"{name} is {original[1]}x{original[0]} px: shown and segmented at {target[1]}x{target[0]} "
            f"(max_side={max_side}); downloaded masks are scaled back to {original[1]}x{original[0]}"
        )
    rgb = np.array(rgb, copy=True)  # contiguous and writable (Pillow's arrays are read-only)
    return LoadedImage(name, rgb, (int(original[0]), int(original[1])), note)


def _scaled(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(height, width) with the longer side at most ``max_side``, aspect kept."""
    if max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _to_rgb(image: Image.Image) -> np.ndarray:
    """uint8 H x W x 3 RGB: 16-bit gray keeps its high byte, alpha is dropped, palettes expanded."""
    if image.mode.startswith("I;16"):
        gray = (np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.asarray(image.convert("RGB"))
