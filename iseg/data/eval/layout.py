"""Checking a dataset folder against its expected layout, and pairing images with masks.

A missing root, folder or list file raises :class:`DatasetLayoutError`, whose message draws the
tree the loader expects so that a user can fix a download without reading the code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from iseg.data.eval.base import EvalEntry, Exclusion


class DatasetLayoutError(FileNotFoundError):
    """A dataset root, folder or list file is missing; the message shows the expected layout."""


def layout_tree(root: Path, items: Sequence[tuple[str, str]]) -> str:
    """A small text tree: ``root/`` then one ``|-- path  description`` line per item."""
    width = max(len(path) for path, _ in items)
    lines = [f"{root}/"]
    for i, (path, description) in enumerate(items):
        branch = "`--" if i == len(items) - 1 else "|--"
        lines.append(f"  {branch} {path.ljust(width)}  {description}")
    return "\n".join(lines)


def require_layout(
    title: str,
    root: Path,
    items: Sequence[tuple[str, str]],
    required: Sequence[str],
    kind: str = "evaluation set",
) -> None:
    """Raise :class:`DatasetLayoutError` if ``root`` or one of the ``required`` paths under it is absent.

    ``kind`` names what the folder is for in the message ("evaluation set", "training data").
    """
    if not root.is_dir():
        missing = [f"root folder {root}"]
    else:
        missing = [str(root / rel) for rel in required if not (root / rel).exists()]
    if missing:
        raise DatasetLayoutError(
            f"{title} {kind}: not found: {', '.join(missing)}. Expected layout:\n{layout_tree(root, items)}"
        )


def list_files(folder: Path) -> list[Path]:
    """Data files of ``folder`` sorted by name, as the reference's ``sorted(glob('*.*'))``.

    Only names with an extension count (as ``*.*`` does); hidden files (``.DS_Store``) and
    sub-folders are not samples.
    """
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and "." in p.name and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def pair_by_stem(
    title: str, images_dir: Path, masks_dir: Path
) -> tuple[list[EvalEntry], list[Exclusion]]:
    """One entry per image (sorted by file name) with the mask of the same stem, any extension.

    An image without a mask and two masks sharing a stem are errors; a mask without an image is
    not a sample and is returned as an exclusion so that it is reported, not lost.
    """
    masks: dict[str, Path] = {}
    for mask in list_files(masks_dir):
        if mask.stem in masks:
            raise ValueError(
                f"{title}: masks {masks[mask.stem]} and {mask} share the stem {mask.stem!r}; "
                "masks are matched to images by stem, so keep only one"
            )
        masks[mask.stem] = mask
    entries: list[EvalEntry] = []
    used: set[str] = set()
    for image in list_files(images_dir):
        mask = masks.get(image.stem)
        if mask is None:
            raise FileNotFoundError(
                f"{title}: image {image} has no mask: expected {masks_dir / image.stem}.<ext> (matched by file stem)"
            )
        used.add(image.stem)
        entries.append(EvalEntry(image.name, image, mask))
    if not entries:
        raise FileNotFoundError(f"{title}: no image files in {images_dir}")
    orphans = [
        (f"mask {path.name}", f"no image with stem {stem!r} in {images_dir}")
        for stem, path in masks.items()
        if stem not in used
    ]
    return entries, sorted(orphans)


def paired_folders(
    title: str, root: Path, images_dir: str, masks_dir: str, images_hint: str, masks_hint: str
) -> tuple[list[EvalEntry], list[Exclusion]]:
    """``root/images_dir`` and ``root/masks_dir`` as stem-matched entries (:func:`pair_by_stem`),
    after :func:`require_layout` has checked both folders (the hints describe them in its error)."""
    layout = [(f"{images_dir}/", images_hint), (f"{masks_dir}/", masks_hint)]
    require_layout(title, root, layout, [images_dir, masks_dir])
    return pair_by_stem(title, root / images_dir, root / masks_dir)


def read_name_list(path: Path) -> list[str]:
    """Sample names of a split file (one per line; surrounding spaces and blank lines are not names)."""
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f]
    names = [name for name in names if name]
    if not names:
        raise ValueError(f"split file {path} lists no sample")
    return names
