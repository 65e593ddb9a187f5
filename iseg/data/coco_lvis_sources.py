"""Reading the raw COCO 2017 and LVIS v1 annotations of one split, image by image.

LVIS v1 JSON is COCO-format (the ``lvis`` package is not needed): images carry their COCO id and
``coco_url`` (``.../<split>2017/<id:012d>.jpg``), annotations polygons. COCO comes in one of two
forms:

- panoptic (what the reference uses): ``annotations/panoptic_<split>2017.json`` plus the PNG folder
  ``annotations/panoptic_<split>2017/``; a pixel's segment id is R + 256·G + 256²·B. "Thing"
  segments (crowd included) are instances, the others stuff.
- instances: ``annotations/instances_<split>2017.json`` (polygons, and RLE for crowd regions),
  optionally with COCO-Stuff's ``annotations/stuff_<split>2017.json`` for stuff regions (its
  catch-all class "other", id 183, which covers the things, is not a stuff region).

An image is described by plain data (``RawImage``) so that conversion workers can take it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as coco_mask

COCO_STUFF_OTHER_ID = 183
COCO_FORMS = ("panoptic", "instances")


@dataclass
class RawImage:
    """Everything needed to convert one image; masks are read/rasterised by the worker."""

    stem: str
    image_path: Path
    height: int
    width: int
    lvis_segmentations: list[Any]
    coco_things: list[Any] = field(default_factory=list)  # panoptic segment ids or COCO segmentations
    coco_stuff: list[Any] = field(default_factory=list)
    panoptic_png: Path | None = None


def load_json(path: Path, what: str) -> Any:
    """Parse a JSON file; an error names the file (and the line/column of a syntax error)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} {path} is not valid JSON: {error}") from None


def _require_keys(data: Any, keys: tuple[str, ...], path: Path) -> None:
    if not isinstance(data, dict) or any(k not in data for k in keys):
        have = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: expected a COCO-format JSON object with keys {list(keys)}, got {have}")


def coco_paths(coco_root: Path, split: str, form: str) -> dict[str, Path]:
    """The files of one COCO form for ``split`` ('train' or 'val')."""
    annotations = coco_root / "annotations"
    paths = {"images": coco_root / f"{split}2017"}
    if form == "panoptic":
        paths["json"] = annotations / f"panoptic_{split}2017.json"
        paths["png_dir"] = annotations / f"panoptic_{split}2017"
    elif form == "instances":
        paths["json"] = annotations / f"instances_{split}2017.json"
        paths["stuff_json"] = annotations / f"stuff_{split}2017.json"  # optional
    else:
        raise ValueError(f"COCO annotation form must be one of {COCO_FORMS} or 'auto', got {form!r}")
    return paths


def lvis_path(lvis_root: Path, split: str) -> Path:
    return lvis_root / f"lvis_v1_{split}.json"


def read_lvis(path: Path) -> dict[str, tuple[int, int, list[Any]]]:
    """stem -> (height, width, polygon segmentations in annotation order)."""
    data = load_json(path, "LVIS annotation")
    _require_keys(data, ("images", "annotations"), path)
    by_id: dict[int, list[Any]] = {}
    for ann in data["annotations"]:
        by_id.setdefault(ann["image_id"], []).append(ann["segmentation"])
    result = {}
    for image in data["images"]:
        url = image.get("coco_url")
        stem = Path(url).stem if url else f"{int(image['id']):012d}"
        result[stem] = (int(image["height"]), int(image["width"]), by_id.get(image["id"], []))
    return result


def read_coco(coco_root: Path, split: str, form: str) -> dict[str, RawImage]:
    """stem -> RawImage with the COCO part filled in (LVIS added by the caller)."""
    paths = coco_paths(coco_root, split, form)
    data = load_json(paths["json"], f"COCO {form} annotation")
    _require_keys(data, ("images", "annotations", "categories"), paths["json"])
    images = {}
    for image in data["images"]:
        stem = Path(image["file_name"]).stem
        images[image["id"]] = RawImage(stem, paths["images"] / image["file_name"], int(image["height"]),
                                       int(image["width"]), [])
    if form == "panoptic":
        is_thing = {c["id"]: bool(c.get("isthing", 1)) for c in data["categories"]}
        for ann in data["annotations"]:
            raw = _image_of(images, ann["image_id"], paths["json"])
            raw.panoptic_png = paths["png_dir"] / ann["file_name"]
            for segment in ann["segments_info"]:
                (raw.coco_things if is_thing.get(segment["category_id"], True) else raw.coco_stuff).append(int(segment["id"]))
    else:
        for ann in data["annotations"]:
            _image_of(images, ann["image_id"], paths["json"]).coco_things.append(ann["segmentation"])
        if paths["stuff_json"].is_file():
            stuff = load_json(paths["stuff_json"], "COCO-Stuff annotation")
            _require_keys(stuff, ("annotations",), paths["stuff_json"])
            for ann in stuff["annotations"]:
                if ann.get("category_id") != COCO_STUFF_OTHER_ID and ann["image_id"] in images:
                    images[ann["image_id"]].coco_stuff.append(ann["segmentation"])
    return {raw.stem: raw for raw in images.values()}


def _image_of(images: dict[int, RawImage], image_id: int, path: Path) -> RawImage:
    if image_id not in images:
        raise ValueError(f"{path}: an annotation refers to image id {image_id}, which its 'images' list lacks")
    return images[image_id]


# ---------------------------------------------------------------------- rasterising
def lvis_polygon_mask(segmentation: list[list[float]], height: int, width: int) -> np.ndarray:
    """The reference's LVIS rasterisation: each polygon part filled (rounded vertices), parts united."""
    mask = np.zeros((height, width), np.uint8)
    for part in segmentation:
        points = np.round(np.asarray(part, np.float64).reshape(-1, 2)).astype(np.int32)
        cv2.fillPoly(mask, [points], 1)
    return mask.astype(bool)


def coco_segmentation_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """COCO polygons, uncompressed RLE (crowd) or compressed RLE -> bool H×W (pycocotools' annToMask)."""
    if isinstance(segmentation, list):
        rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = coco_mask.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    with warnings.catch_warnings():  # pycocotools 2.0.x under numpy 2: a harmless copy-keyword notice
        warnings.simplefilter("ignore", DeprecationWarning)
        return coco_mask.decode(rle).astype(bool)


def read_panoptic_ids(path: Path, height: int, width: int) -> np.ndarray:
    """int64 H×W segment ids of a COCO panoptic PNG (R + 256·G + 256²·B)."""
    png = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if png is None:
        raise FileNotFoundError(f"COCO panoptic PNG {path} is {'missing' if not path.exists() else 'unreadable'}")
    if png.shape[:2] != (height, width):
        raise ValueError(f"COCO panoptic PNG {path} is {png.shape[:2]} (H, W), its image is {(height, width)}")
    png = png.astype(np.int64)
    return png[:, :, 2] + 256 * png[:, :, 1] + 256 * 256 * png[:, :, 0]


def coco_masks(raw: RawImage) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(thing masks, stuff masks) of one image, in annotation order."""
    if raw.panoptic_png is not None:
        ids = read_panoptic_ids(raw.panoptic_png, raw.height, raw.width)
        return [ids == i for i in raw.coco_things], [ids == i for i in raw.coco_stuff]
    things = [coco_segmentation_mask(s, raw.height, raw.width) for s in raw.coco_things]
    stuff = [coco_segmentation_mask(s, raw.height, raw.width) for s in raw.coco_stuff]
    return things, stuff
