"""The reference's static sets as iseg folder sets: ``images/`` + ``masks/`` of symbolic links.

S2M's download script unpacks the static saliency / segmentation sets as folders of ``<stem>.jpg``
images with ``<stem>.png`` masks side by side (``BIG_small``, ``DUTS-TE``, ``DUTS-TR``, ``ecssd``,
``HRSOD_small``), FSS-1000 as one such folder per class (``fss/<class>/<n>.jpg``). ``link_static_sets``
writes ``<dest>/<name>/{images,masks}/`` with links to those files (FSS-1000 stems become
``<class>_<n>``), the layout ``data=s2m_static_lvis`` reads under ``${paths.data_dir}/static``:

    python -m iseg.data.s2m_static /path/to/static /data/static
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

REFERENCE_SETS = {
    "fss": "fss",
    "DUTS-TR": "duts_tr",
    "DUTS-TE": "duts_te",
    "ecssd": "ecssd",
    "BIG_small": "big",
    "HRSOD_small": "hrsod",
}
"""Folder of the reference's download -> the dataset name in conf/data/s2m_static_lvis.yaml."""


def _pairs(folder: Path, prefix: str = "") -> list[tuple[str, Path, Path]]:
    """(stem, image, mask) for every ``*.jpg`` of ``folder`` with its ``*.png``; a missing mask is an error."""
    pairs = []
    for image in sorted(folder.glob("*.jpg")):
        mask = image.with_suffix(".png")
        if not mask.is_file():
            raise FileNotFoundError(f"{image}: no mask {mask.name} beside it (the reference pairs <stem>.jpg with <stem>.png)")
        pairs.append((f"{prefix}{image.stem}", image, mask))
    return pairs


def link_static_sets(source: str | Path, dest: str | Path) -> dict[str, int]:
    """Link every reference static set found under ``source`` into ``dest``; returns name -> image count.

    Sets that are absent are skipped (and not counted); a set folder without any image pair is an error.
    """
    source, dest = Path(source).expanduser(), Path(dest).expanduser()
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: not a folder (expected the reference's static sets: {sorted(REFERENCE_SETS)})")
    counts = {}
    for folder_name, name in REFERENCE_SETS.items():
        folder = source / folder_name
        if not folder.is_dir():
            continue
        if name == "fss":
            pairs = [p for cls in sorted(d for d in folder.iterdir() if d.is_dir()) for p in _pairs(cls, f"{cls.name}_")]
        else:
            pairs = _pairs(folder)
        if not pairs:
            raise FileNotFoundError(f"{folder}: no <stem>.jpg + <stem>.png pairs")
        for sub in ("images", "masks"):
            (dest / name / sub).mkdir(parents=True, exist_ok=True)
        for stem, image, mask in pairs:
            for link, target in ((dest / name / "images" / f"{stem}.jpg", image), (dest / name / "masks" / f"{stem}.png", mask)):
                if link.is_symlink() or link.exists():
                    link.unlink()
                os.symlink(target.resolve(), link)
        counts[name] = len(pairs)
    if not counts:
        raise FileNotFoundError(f"{source}: none of the reference's static sets {sorted(REFERENCE_SETS)} is there")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="the reference's static folder (BIG_small, DUTS-TE, DUTS-TR, ecssd, fss, HRSOD_small)")
    parser.add_argument("dest", help="where the images/ + masks/ sets go (data=s2m_static_lvis reads <data_dir>/static)")
    args = parser.parse_args()
    for name, count in link_static_sets(args.source, args.dest).items():
        print(f"{name}: {count} images")


if __name__ == "__main__":
    main()
