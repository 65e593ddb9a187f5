"""Tiny COCO+LVIS folders for tests: the authors' preprocessed layout, and raw COCO 2017 + LVIS v1 files.

Both writers draw axis-aligned rectangles on noise images, so every expected mask is known exactly.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from iseg.data.coco_lvis_masks import build_hierarchy, encode_layers

Rect = tuple[int, int, int, int]  # rows [r0, r1), cols [c0, c1)


def rect_mask(size: tuple[int, int], rect: Rect) -> np.ndarray:
    mask = np.zeros(size, bool)
    r0, r1, c0, c1 = rect
    mask[r0:r1, c0:c1] = True
    return mask


def write_noise_jpeg(path: Path, size: tuple[int, int], seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)


# ---------------------------------------------------------------------- preprocessed layout
# One image: a whole (0) with a part (1) inside it, a separate object (2), and one stuff region (3).
PREPROCESSED_RECTS = {"whole": (4, 44, 4, 60), "part": (10, 30, 10, 40), "other": (8, 50, 66, 92), "stuff": (50, 64, 0, 96)}


def write_preprocessed_cocolvis(
    root: Path, splits: tuple[str, ...] = ("train", "val"), num_images: int = 2, size: tuple[int, int] = (64, 96)
) -> dict[str, dict[str, list[np.ndarray]]]:
    """Write ``<root>/<split>/{images,masks,hannotation.pickle}`` and return split -> image id -> masks.

    Every image has the objects of ``PREPROCESSED_RECTS`` in that order: instances 0 ('whole'),
    1 ('part', child of 0) and 2 ('other'), then stuff 3 ('stuff'); ids are ``'<split>_<k>'``.
    """
    masks = [rect_mask(size, PREPROCESSED_RECTS[k]) for k in ("whole", "part", "other")]
    stuff = [rect_mask(size, PREPROCESSED_RECTS["stuff"])]
    written: dict[str, dict[str, list[np.ndarray]]] = {}
    for s, split in enumerate(splits):
        split_dir = root / split
        (split_dir / "masks").mkdir(parents=True, exist_ok=True)
        annotation = {}
        written[split] = {}
        for k in range(num_images):
            image_id = f"{split}_{k}"
            write_noise_jpeg(split_dir / "images" / f"{image_id}.jpg", size, seed=10 * s + k)
            with open(split_dir / "masks" / f"{image_id}.pickle", "wb") as f:
                pickle.dump(encode_layers(masks + stuff), f)
            annotation[image_id] = {"num_instance_masks": len(masks), "hierarchy": build_hierarchy(masks)}
            written[split][image_id] = masks + stuff
        with open(split_dir / "hannotation.pickle", "wb") as f:
            pickle.dump(annotation, f)
    return written


# ---------------------------------------------------------------------- raw COCO 2017 + LVIS v1
RAW_SIZE = (80, 120)
# image 1 hits every conversion rule; image 2 has COCO things only; image 3 is in LVIS but not in
# COCO; image 4 has only masks under 80 px; image 5 (val) one object.
RAW_SCENE = {
    1: {
        "coco_things": {"t1": (10, 40, 10, 50), "t2_crowd": (50, 75, 70, 115), "t3_small": (2, 8, 60, 66)},
        "lvis": {"l1": (10, 40, 10, 49), "l2": (45, 75, 5, 40), "l3": (45, 75, 5, 39), "l4_part": (15, 35, 15, 40),
                 "l5_subpart": (17, 29, 17, 29), "l6": (60, 78, 45, 65)},
        "stuff": {"s1": (0, 80, 50, 70), "s2_small": (0, 10, 100, 120)},
    },
    2: {"coco_things": {"t4": (20, 60, 30, 90)}, "lvis": {}, "stuff": {}},
    3: {"coco_things": {}, "lvis": {"l7": (5, 50, 5, 50)}, "stuff": {}, "coco": False},
    4: {"coco_things": {"t5_small": (0, 5, 0, 5)}, "lvis": {"l8_small": (70, 75, 70, 75)}, "stuff": {}},
}
RAW_VAL_SCENE = {5: {"coco_things": {"t6": (10, 50, 20, 80)}, "lvis": {"l9": (30, 70, 60, 110)}, "stuff": {}}}


def _rect_polygon(rect: Rect) -> list[float]:
    r0, r1, c0, c1 = rect  # vertices on the border pixels: cv2.fillPoly then fills exactly the rectangle
    return [float(v) for v in (c0, r0, c1 - 1, r0, c1 - 1, r1 - 1, c0, r1 - 1)]


def _uncompressed_rle(mask: np.ndarray) -> dict:
    flat = mask.flatten(order="F").astype(np.uint8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    return {"size": list(mask.shape), "counts": counts}


@dataclass
class RawCocoLvis:
    """Where ``write_raw_coco_lvis`` put things, and the drawn masks (image id -> name -> H×W bool)."""

    coco_root: Path
    lvis_root: Path
    masks: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)


def write_raw_coco_lvis(root: Path, forms: tuple[str, ...] = ("panoptic", "instances"), with_stuff_json: bool = True) -> RawCocoLvis:
    """Write ``root/coco`` (images, panoptic JSON + PNGs and/or instances JSON [+ stuff JSON]) and ``root/lvis``.

    Scenes are ``RAW_SCENE`` (train) and ``RAW_VAL_SCENE`` (val): COCO things (the crowd one as
    uncompressed RLE, the others polygons), LVIS polygons and stuff regions, all rectangles, on
    ``RAW_SIZE`` noise images named ``<split>2017/<id:012d>.jpg``.
    """
    files = RawCocoLvis(root / "coco", root / "lvis")
    (files.coco_root / "annotations").mkdir(parents=True, exist_ok=True)
    files.lvis_root.mkdir(parents=True, exist_ok=True)
    categories = [{"id": 1, "name": "thing", "isthing": 1}, {"id": 2, "name": "stuff", "isthing": 0}]
    for split, scene in (("train", RAW_SCENE), ("val", RAW_VAL_SCENE)):
        coco_images, lvis_images, lvis_anns, instance_anns, stuff_anns, panoptic_anns = [], [], [], [], [], []
        for image_id, objects in scene.items():
            file_name = f"{image_id:012d}.jpg"
            entry = {"id": image_id, "file_name": file_name, "height": RAW_SIZE[0], "width": RAW_SIZE[1]}
            lvis_images.append({"id": image_id, "height": RAW_SIZE[0], "width": RAW_SIZE[1],
                                "coco_url": f"http://images.cocodataset.org/{split}2017/{file_name}"})
            drawn = files.masks.setdefault(image_id, {})
            for name, rect in objects["lvis"].items():
                drawn[name] = rect_mask(RAW_SIZE, rect)
                lvis_anns.append({"id": len(lvis_anns) + 1, "image_id": image_id, "category_id": 1,
                                  "segmentation": [_rect_polygon(rect)]})
            if not objects.get("coco", True):
                continue
            coco_images.append(entry)
            write_noise_jpeg(files.coco_root / f"{split}2017" / file_name, RAW_SIZE, seed=image_id)
            ids = np.zeros(RAW_SIZE, np.int64)
            segments = []
            for k, (name, rect) in enumerate([*objects["coco_things"].items(), *objects["stuff"].items()]):
                is_stuff = name in objects["stuff"]
                segment_id = 1000 * image_id + 7 * k + 3  # spreads over the R, G and B channels
                mask = rect_mask(RAW_SIZE, rect) & (ids == 0)  # panoptic segments do not overlap
                ids[mask] = segment_id
                drawn[name] = mask
                segments.append({"id": segment_id, "category_id": 2 if is_stuff else 1, "iscrowd": int("crowd" in name)})
                if is_stuff:
                    stuff_anns.append({"id": 100 + len(stuff_anns), "image_id": image_id, "category_id": 92,
                                       "segmentation": _uncompressed_rle(mask)})
                elif "crowd" in name:
                    instance_anns.append({"id": len(instance_anns) + 1, "image_id": image_id, "category_id": 1,
                                          "iscrowd": 1, "segmentation": _uncompressed_rle(mask)})
                else:
                    instance_anns.append({"id": len(instance_anns) + 1, "image_id": image_id, "category_id": 1,
                                          "iscrowd": 0, "segmentation": [_rect_polygon(rect)]})
            # COCO-Stuff's "other" class covers the things; the conversion must not take it as stuff
            stuff_anns.append({"id": 900 + image_id, "image_id": image_id, "category_id": 183,
                               "segmentation": _uncompressed_rle(ids > 0)})
            png = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=2).astype(np.uint8)  # RGB
            png_dir = files.coco_root / "annotations" / f"panoptic_{split}2017"
            png_dir.mkdir(exist_ok=True)
            assert cv2.imwrite(str(png_dir / f"{image_id:012d}.png"), png[:, :, ::-1])
            panoptic_anns.append({"image_id": image_id, "file_name": f"{image_id:012d}.png", "segments_info": segments})
        annotations = files.coco_root / "annotations"
        (files.lvis_root / f"lvis_v1_{split}.json").write_text(
            json.dumps({"images": lvis_images, "annotations": lvis_anns, "categories": categories[:1]}))
        if "panoptic" in forms:
            (annotations / f"panoptic_{split}2017.json").write_text(
                json.dumps({"images": coco_images, "annotations": panoptic_anns, "categories": categories}))
        else:
            for png_dir in annotations.glob("panoptic_*2017"):
                for png in png_dir.iterdir():
                    png.unlink()
                png_dir.rmdir()
        if "instances" in forms:
            (annotations / f"instances_{split}2017.json").write_text(
                json.dumps({"images": coco_images, "annotations": instance_anns, "categories": categories[:1]}))
            if with_stuff_json:
                (annotations / f"stuff_{split}2017.json").write_text(
                    json.dumps({"images": coco_images, "annotations": stuff_anns,
                                "categories": [{"id": 92, "name": "stuff"}, {"id": 183, "name": "other"}]}))
    return files
