"""Raw COCO 2017 + LVIS v1 annotations -> the COCO+LVIS training layout, converted once and cached.

``ensure_converted(root, coco_root, lvis_root)`` writes ``<root>/<split>/`` in the layout that
``CocoLvisSource`` reads (``images/<id>.jpg`` as symbolic links to the COCO images — copies where
links are not possible —, ``masks/<id>.pickle``, ``hannotation.pickle``), merging the two
annotations as RITM's conversion script does (see ``coco_lvis_masks``): masks of ≥ 80 px, COCO/LVIS
duplicates removed, parts under wholes, stuff minus instances.

Caching: ``<root>/<split>/conversion.json`` records the inputs (paths, sizes, modification times),
the COCO form and the conversion version. A later run with the same record reuses the split; a
changed input converts again. A split is written under a temporary name and renamed into place
when complete, so a killed run never leaves a half-written split, and a file lock lets the
processes of a multi-GPU run wait for one conversion instead of racing.

Reference behaviours kept on purpose (§6): images are matched by file stem within the same COCO
split (LVIS v1 val also has images from COCO train2017; like the reference those are not used);
an image left without any instance mask is skipped (counted in the report).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from iseg.data.coco_lvis import ANNOTATION_FILE
from iseg.data.coco_lvis_masks import build_hierarchy, encode_layers, merge_instances, stuff_remainders
from iseg.data.coco_lvis_sources import (
    COCO_FORMS,
    RawImage,
    coco_masks,
    coco_paths,
    lvis_path,
    lvis_polygon_mask,
    read_coco,
    read_lvis,
)
from iseg.data.eval.layout import DatasetLayoutError, layout_tree

log = logging.getLogger(__name__)

CONVERSION_VERSION = 1
RECORD_FILE = "conversion.json"
MIN_MASK_AREA = 80  # the reference conversion's min_object_area (training uses 1000 after augmentation)


def raw_layout(split: str) -> list[tuple[str, str]]:
    return [
        (f"<coco_root>/{split}2017/", "<id:012d>.jpg COCO images"),
        (f"<coco_root>/annotations/panoptic_{split}2017.json", "panoptic form (the reference's) ..."),
        (f"<coco_root>/annotations/panoptic_{split}2017/", "... with its PNG segment maps"),
        (f"<coco_root>/annotations/instances_{split}2017.json", "or the instances form (things only) ..."),
        (f"<coco_root>/annotations/stuff_{split}2017.json", "... optionally with COCO-Stuff regions"),
        (f"<lvis_root>/lvis_v1_{split}.json", "LVIS v1 annotation"),
    ]


def resolve_coco_form(coco_root: Path, split: str, form: str = "auto") -> str:
    """'panoptic' when its JSON and PNG folder exist (for 'auto'), else 'instances'; a layout error if neither."""
    forms = COCO_FORMS if form == "auto" else (form,)
    for candidate in forms:
        paths = coco_paths(coco_root, split, candidate)
        required = [paths["json"]] + ([paths["png_dir"]] if candidate == "panoptic" else [])
        if all(p.exists() for p in required):
            return candidate
    wanted = "panoptic or instances" if form == "auto" else form
    raise DatasetLayoutError(
        f"COCO 2017 ({wanted} annotations) for split {split!r} not found under {coco_root}. Expected layout:\n"
        + layout_tree(coco_root, raw_layout(split))
    )


def input_record(coco_root: Path, lvis_root: Path, split: str, form: str) -> dict[str, Any]:
    """What the cached split depends on; any change makes it stale."""
    paths = coco_paths(coco_root, split, form)
    files = [lvis_path(lvis_root, split), paths["json"]]
    files += [paths["png_dir"]] if form == "panoptic" else [paths["stuff_json"]]
    inputs = {}
    for path in files:
        path = path.resolve()
        stat = path.stat() if path.exists() else None
        inputs[str(path)] = [stat.st_size, stat.st_mtime_ns] if stat else None
    return {
        "version": CONVERSION_VERSION,
        "split": split,
        "coco_form": form,
        "coco_images": str(paths["images"].resolve()),
        "min_mask_area": MIN_MASK_AREA,
        "inputs": inputs,
    }


def read_record(split_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((split_dir / RECORD_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def ensure_converted(
    root: str | Path,
    coco_root: str | Path,
    lvis_root: str | Path,
    splits: Sequence[str] = ("train", "val"),
    coco_form: str = "auto",
    num_workers: int = 0,
) -> dict[str, dict[str, int]]:
    """Convert every split whose cached copy under ``root`` is missing or stale; return each split's counts.

    Args:
        root: where ``<split>/`` is written (the ``data.root`` that training then reads).
        coco_root: COCO 2017 folder (``<split>2017/`` images and ``annotations/``).
        lvis_root: folder with ``lvis_v1_<split>.json``.
        splits: splits to provide.
        coco_form: 'panoptic', 'instances' or 'auto' (panoptic when present).
        num_workers: processes rasterising and merging masks (0: in this process).
    """
    root, coco_root, lvis_root = (Path(p).expanduser() for p in (root, coco_root, lvis_root))
    root.mkdir(parents=True, exist_ok=True)
    results = {}
    with _exclusive_lock(root / ".cocolvis-conversion.lock"):
        for split in splits:
            form = resolve_coco_form(coco_root, split, coco_form)
            if not lvis_path(lvis_root, split).is_file():
                raise DatasetLayoutError(
                    f"LVIS v1 annotation for split {split!r} not found: {lvis_path(lvis_root, split)}. Expected layout:\n"
                    + layout_tree(lvis_root, raw_layout(split)[-1:])
                )
            record = input_record(coco_root, lvis_root, split, form)
            split_dir = root / split
            existing = read_record(split_dir)
            if split_dir.exists() and existing is None:
                raise FileExistsError(
                    f"{split_dir} holds a COCO+LVIS split that iseg's conversion did not write (no {RECORD_FILE}); "
                    "train on it with data.source=preprocessed, or give data.root a new folder for the conversion"
                )
            if existing is not None and {k: v for k, v in existing.items() if k != "counts"} == record:
                log.info("COCO+LVIS %s: reusing the converted annotation in %s", split, split_dir)
                results[split] = existing["counts"]
                continue
            log.info("COCO+LVIS %s: converting %s (%s) and %s into %s", split, coco_root, form, lvis_root, split_dir)
            results[split] = convert_split(split_dir, coco_root, lvis_root, split, form, record, num_workers)
    return results


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; convert from one process only
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def convert_split(
    split_dir: Path, coco_root: Path, lvis_root: Path, split: str, form: str, record: dict[str, Any], num_workers: int = 0
) -> dict[str, int]:
    """Write one split atomically (temporary folder, then rename) and return its counts."""
    lvis = read_lvis(lvis_path(lvis_root, split))
    coco = read_coco(coco_root, split, form)
    counts: Counter[str] = Counter(lvis_images=len(lvis), coco_images=len(coco))
    tasks = []
    for stem, raw in coco.items():
        if stem not in lvis:
            continue
        height, width, segmentations = lvis[stem]
        if (height, width) != (raw.height, raw.width):
            raise ValueError(
                f"image {stem}: LVIS ({lvis_path(lvis_root, split)}) gives size {(height, width)}, "
                f"COCO ({coco_paths(coco_root, split, form)['json']}) gives {(raw.height, raw.width)}"
            )
        raw.lvis_segmentations = segmentations
        tasks.append(raw)
    counts["lvis_images_not_in_coco_split"] = len(lvis) - len(tasks)
    missing = [raw.image_path for raw in tasks if not raw.image_path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"COCO+LVIS {split}: {len(missing)} COCO images of annotated images are missing, e.g. {missing[0]}"
        )

    for stale in split_dir.parent.glob(f".{split}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed run (we hold the lock)
    partial = split_dir.parent / f".{split}.partial-{os.getpid()}"
    (partial / "masks").mkdir(parents=True)
    (partial / "images").mkdir()
    annotation = {}
    for stem, result in _map(convert_image, tasks, num_workers):
        counts.update(result["counts"])
        if result["entry"] is None:
            counts["images_without_instances"] += 1
            continue
        annotation[stem] = result["entry"]
        with open(partial / "masks" / f"{stem}.pickle", "wb") as f:
            pickle.dump(result["packed"], f, protocol=pickle.HIGHEST_PROTOCOL)
        _link_image(coco[stem].image_path, partial / "images" / f"{stem}.jpg")
    counts["images"] = len(annotation)
    with open(partial / ANNOTATION_FILE, "wb") as f:
        pickle.dump(annotation, f, protocol=pickle.HIGHEST_PROTOCOL)
    (partial / RECORD_FILE).write_text(json.dumps({**record, "counts": dict(counts)}, indent=1), encoding="utf-8")

    stale = split_dir.parent / f".{split}.stale-{os.getpid()}"
    if split_dir.exists():
        split_dir.rename(stale)
    partial.rename(split_dir)
    shutil.rmtree(stale, ignore_errors=True)
    log.info(
        "COCO+LVIS %s: %d images, %d instances, %d stuff regions; skipped %d LVIS images not in COCO %s2017 and %d "
        "images without instance masks; dropped %d masks under %d px, %d COCO and %d LVIS duplicates",
        split, counts["images"], counts["instances"], counts["stuff"], counts["lvis_images_not_in_coco_split"], split,
        counts["images_without_instances"], counts["small_masks"], MIN_MASK_AREA, counts["coco_duplicates"],
        counts["lvis_duplicates"],
    )
    return dict(counts)


def _map(function: Any, tasks: list[RawImage], num_workers: int) -> Iterator[tuple[str, dict[str, Any]]]:
    if num_workers <= 0 or len(tasks) < 2:
        yield from ((raw.stem, function(raw)) for raw in tasks)
        return
    with get_context("spawn").Pool(num_workers) as pool:
        yield from zip((raw.stem for raw in tasks), pool.imap(function, tasks, chunksize=16))


def _link_image(source: Path, target: Path) -> None:
    try:
        target.symlink_to(source.resolve())
    except OSError:  # no symbolic links here (e.g. Windows without the privilege)
        shutil.copyfile(source, target)


def convert_image(raw: RawImage) -> dict[str, Any]:
    """One image: {'entry': hannotation entry or None, 'packed': (layers, mapping), 'counts': Counter}."""
    counts: Counter[str] = Counter()
    lvis = [lvis_polygon_mask(s, raw.height, raw.width) for s in raw.lvis_segmentations]
    things, stuff = coco_masks(raw)
    large_lvis = [m for m in lvis if m.sum() >= MIN_MASK_AREA]
    large_coco = [m for m in things if m.sum() >= MIN_MASK_AREA]
    counts["small_masks"] = len(lvis) - len(large_lvis) + len(things) - len(large_coco)
    kept_coco, kept_lvis = merge_instances(large_coco, large_lvis)
    counts["coco_duplicates"] = len(large_coco) - len(kept_coco)
    counts["lvis_duplicates"] = len(large_lvis) - len(kept_lvis)
    instances = kept_coco + kept_lvis
    if not instances:
        return {"entry": None, "packed": None, "counts": counts}
    hierarchy = build_hierarchy(instances)
    regions = stuff_remainders(stuff, instances)
    counts["instances"], counts["stuff"] = len(instances), len(regions)
    entry = {"num_instance_masks": len(instances), "hierarchy": hierarchy}
    return {"entry": entry, "packed": encode_layers(instances + regions), "counts": counts}
