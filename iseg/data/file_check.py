"""Start-up checks of image/mask folders: every problem found before the first sample is read.

A folder set (training ``FolderSource``, evaluation sets) calls :func:`find_problems` and :func:`report_problems` once when it
is built, with one :class:`SampleFiles` per sample. What is checked depends on ``check``:

- ``'header'`` (default): each file is opened and its header read (PIL), without decoding the
  pixels: the file must exist and be an image format (OpenCV must have a reader for it too), a PNG
  must be complete (chunk checksums, so a truncated PNG is found), and the mask must have the
  image's height and width (EXIF orientation of images is applied, as OpenCV applies it). About
  0.5 ms per image+mask pair. A truncated JPEG passes (OpenCV decodes it anyway, the missing rows
  grey); a JPEG damaged past its header (e.g. its Huffman tables) passes too and fails when read.
- ``'decode'``: every image is decoded in full as the loader decodes it (OpenCV): slower (about
  10 ms for a 854x480 JPEG, 100-300 ms for 12 megapixels) and exact.
- ``'off'``: nothing (files are found when read).

Masks decoded at start-up anyway (evaluation sets read every mask to list objects) are not read
again: their decoded size is given with ``mask_shape``. Results are remembered per file version
(path, mtime, size), so the training and validation sources of one folder read each file once.

Problems are gathered, not raised one by one (:func:`find_problems`); :func:`report_problems`
raises one :class:`BadSamplesError` naming every file, or, with ``skip_bad=True``, logs and
returns them so the set leaves those samples out and lists them (a warning, and an evaluation's
exclusions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2

from iseg.data.image_io import decode_rgb

log = logging.getLogger(__name__)

CHECK_MODES = ("header", "decode", "off")
MAX_LISTED = 20

#: EXIF orientations (5-8) that make OpenCV's colour decoding swap height and width.
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}


class BadFileError(ValueError):
    """One file that cannot be used; the message names it and says why."""


class BadSamplesError(ValueError):
    """Some samples of a set have unusable files; ``problems`` is (sample name, reason) per sample."""

    def __init__(self, message: str, problems: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class SampleFiles:
    """The files of one sample: ``mask_shape`` is the decoded (H, W) of the mask when already known;
    ``mask_path`` None skips the mask (a ``.mat`` file, say)."""

    name: str
    image_path: Path
    mask_path: Path | None = None
    mask_shape: tuple[int, int] | None = None


def check_mode(check: str, owner: str) -> str:
    """``check`` after making sure it is one of :data:`CHECK_MODES` (``owner`` names the set in the error)."""
    if check not in CHECK_MODES:
        raise ValueError(f"{owner}: check_files must be one of {list(CHECK_MODES)}, got {check!r}")
    return check


def header_size(path: Path, what: str = "image", orient: bool = True) -> tuple[int, int]:
    """(H, W) of an image file from its header; :class:`BadFileError` when it is not a usable image.

    ``orient``: apply the EXIF orientation as OpenCV's colour decoding does (images, not masks).
    """
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise BadFileError(f"cannot read {what} {path}: it does not exist")
    if path.stat().st_size == 0:
        raise BadFileError(f"cannot read {what} {path}: empty file")
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112) if orient else None
            is_png = image.format == "PNG"
        if is_png:
            with Image.open(path) as image:  # verify must come first after opening
                image.verify()  # every chunk's checksum: finds truncated and damaged PNGs without decoding
    except UnidentifiedImageError:
        return _decoded_size(path, what)  # a format PIL does not know (OpenCV may): decode it
    except (OSError, SyntaxError, ValueError) as error:
        raise BadFileError(f"cannot read {what} {path}: damaged or truncated ({error})") from None
    if not cv2.haveImageReader(str(path)):
        raise BadFileError(f"cannot read {what} {path}: a format OpenCV cannot decode")
    if orientation in _TRANSPOSING_ORIENTATIONS:
        height, width = width, height
    return height, width


def _decoded_size(path: Path, what: str) -> tuple[int, int]:
    image = decode_rgb(path)
    if image is None:
        raise BadFileError(f"cannot read {what} {path}: not an image file OpenCV decodes")
    return int(image.shape[0]), int(image.shape[1])


def read_mask_size(path: Path) -> tuple[int, int]:
    """(H, W) of a mask file from its header (masks are read without EXIF rotation)."""
    return header_size(path, "mask", orient=False)


def image_size(path: Path, check: str) -> tuple[int, int]:
    """(H, W) of an image as the loaders decode it: from the header or a full decode (``check``)."""
    return _decoded_size(path, "image") if check == "decode" else header_size(path)


_CACHE: dict[tuple[str, str, int, int], tuple[int, int] | BadFileError] = {}
_CACHE_LIMIT = 1_000_000


def _cached(path: Path, kind: str, read: Callable[[Path], tuple[int, int]]) -> tuple[int, int]:
    """``read(path)``, remembered per file version (mtime, size): the training and validation
    sources of one folder check the same files, and a rebuilt set does not pay twice."""
    try:
        stat = path.stat()
        key = (str(path), kind, stat.st_mtime_ns, stat.st_size)
    except OSError:
        return read(path)  # missing: read() says so
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        try:
            _CACHE[key] = read(path)
        except BadFileError as error:
            _CACHE[key] = error
    result = _CACHE[key]
    if isinstance(result, BadFileError):
        raise result
    return result


def find_problems(samples: Iterable[SampleFiles], check: str) -> list[tuple[str, str]]:
    """(sample name, reason) for every sample whose files fail the ``check`` (see the module docstring)."""
    if check == "off":
        return []
    problems = []
    for sample in samples:
        try:
            image_hw = _cached(sample.image_path, check, lambda p: image_size(p, check))
            mask_hw = sample.mask_shape
            if mask_hw is None and sample.mask_path is not None:
                mask_hw = _cached(sample.mask_path, "mask", read_mask_size)
            if mask_hw is not None and tuple(mask_hw) != tuple(image_hw):
                raise BadFileError(
                    f"mask {sample.mask_path} is {mask_hw[0]}x{mask_hw[1]} (HxW) but image {sample.image_path} "
                    f"is {image_hw[0]}x{image_hw[1]}"
                )
        except BadFileError as error:
            problems.append((sample.name, str(error)))
    return problems


def report_problems(
    problems: list[tuple[str, str]],
    total: int,
    check: str,
    skip_bad: bool,
    owner: str,
    skip_option: str = "skip_bad_samples=true",
) -> list[tuple[str, str]]:
    """Raise one :class:`BadSamplesError` listing all ``problems`` (of ``total`` samples).

    With ``skip_bad`` they are logged as a warning and returned instead: the caller leaves those
    samples out and lists them. ``owner`` names the set and ``skip_option`` the setting that
    skips, both in the message.
    """
    if not problems:
        return []
    what = {"header": "header check", "decode": "full decode"}.get(check, "reading the masks")
    listed = "\n  ".join(f"{name}: {reason}" for name, reason in problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    head = f"{owner}: {len(problems)} of {total} samples have unusable files ({what} at start-up):\n  {listed}{more}"
    if skip_bad:
        log.warning("%s\nthese samples are left out (%s)", head, skip_option)
        return problems
    raise BadSamplesError(
        f"{head}\nFix or remove these files, or set {skip_option} to leave the samples out "
        "(they are then listed in the log and in evaluation results)",
        problems,
    )
