"""COCO+LVIS training data in the layout RITM's authors distribute (reference §6).

``<root>/<split>/`` holds ``images/<id>.jpg``, ``masks/<id>.pickle`` and ``hannotation.pickle``.
A mask pickle is ``(png_layers, objs_mapping)``: PNG-encoded uint8 layers, and for every object
index its ``(layer, value)``. ``hannotation.pickle`` maps each image id to
``{'num_instance_masks': n, 'hierarchy': {index: None | {'children', 'parent', 'node_level'}}}``;
objects ``0..n-1`` are instances (a tree: parts under wholes), the rest are "stuff" regions.
The raw COCO 2017 + LVIS v1 annotations are converted to this layout by
``iseg.data.coco_lvis_conversion``, so this one loader serves both.

Pickles are opaque and fragile, so every read names its file when it fails.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from iseg.data.image_io import decode_rgb
from iseg.data.sample import InstanceSample, ObjectNode
from iseg.data.source import SampleSource
from iseg.data.training_layout import require_training_layout

log = logging.getLogger(__name__)

ANNOTATION_FILE = "hannotation.pickle"


def split_layout(split: str) -> list[tuple[str, str]]:
    """The expected tree under the dataset root, for layout errors."""
    return [
        (f"{split}/images/", "<id>.jpg, one per annotated image"),
        (f"{split}/masks/", "<id>.pickle: (PNG-encoded mask layers, objs_mapping)"),
        (f"{split}/{ANNOTATION_FILE}", "image id -> {'num_instance_masks', 'hierarchy'}"),
    ]


def read_pickle(path: Path, what: str) -> Any:
    """Unpickle ``path``; a missing, truncated or foreign file raises an error naming it."""
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"COCO+LVIS {what} not found: {path}") from None
    except Exception as error:  # pickle raises many types on corrupt input
        raise ValueError(f"COCO+LVIS {what} {path} cannot be read as a pickle: {type(error).__name__}: {error}") from error


def decode_mask_layers(packed: Any, path: Path) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """(H×W×L uint8 layers, objs_mapping) from a ``masks/<id>.pickle`` payload read from ``path``."""
    if not isinstance(packed, (tuple, list)) or len(packed) != 2:
        raise ValueError(f"mask file {path}: expected a pair (encoded layers, objs_mapping), got {type(packed).__name__}")
    encoded_layers, mapping = packed
    if len(encoded_layers) == 0:
        raise ValueError(f"mask file {path}: holds no mask layer")
    layers = []
    for k, encoded in enumerate(encoded_layers):
        layer = cv2.imdecode(np.asarray(encoded, np.uint8), cv2.IMREAD_UNCHANGED)
        if layer is None or layer.ndim != 2:
            raise ValueError(f"mask file {path}: layer {k} is not a single-channel PNG image")
        if layers and layer.shape != layers[0].shape:
            raise ValueError(f"mask file {path}: layer {k} is {layer.shape}, layer 0 is {layers[0].shape}")
        layers.append(layer)
    try:
        mapping = [(int(layer), int(value)) for layer, value in mapping]
    except (TypeError, ValueError) as error:
        raise ValueError(f"mask file {path}: objs_mapping must be (layer, value) pairs: {error}") from None
    return np.stack(layers, axis=2), mapping


def read_image(path: Path) -> np.ndarray:
    """uint8 H×W×3 RGB, or an error naming the file."""
    image = decode_rgb(path)
    if image is None:
        hint = "missing" if not path.exists() else "not a readable image"
        raise FileNotFoundError(f"COCO+LVIS image {path} is {hint}")
    return image


class CocoLvisSource(SampleSource):
    """Images of one COCO+LVIS split with their instance trees, and stuff regions at random.

    The reference's dataset settings around it: min_object_area 1000 after augmentation,
    keep_background_prob 0.05 in training, epoch_len 30000 / 2000 (conf/data/cocolvis.yaml).

    Args:
        root: folder holding ``<split>/``.
        split: 'train' or 'val' (any sub-folder name works).
        stuff_prob: chance per sample that the stuff regions become extra root objects; otherwise
            their pixels are background (the reference trains with 0.3). Drawn from the ``rng``
            ``get_sample`` is given (the dataset's); without one, stuff is always background.
        allow_list: optional JSON list of image ids to keep (relative paths are under ``<root>/<split>``).
        annotation_file: name of the annotation pickle in ``<root>/<split>``.
        images_dir: folder of ``<id>.jpg`` relative to ``root`` (or absolute), ``{split}`` replaced
            by the split: the default ``{split}/images`` is RITM's layout; ``{split}2017`` reads the
            COCO image folders in place (FCFI's layout).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        stuff_prob: float = 0.0,
        allow_list: str | Path | None = None,
        annotation_file: str = ANNOTATION_FILE,
        images_dir: str = "{split}/images",
    ) -> None:
        if not 0.0 <= stuff_prob <= 1.0:
            raise ValueError(f"stuff_prob must be in [0, 1], got {stuff_prob}")
        self.root = Path(root).expanduser()
        self.split = split
        self.stuff_prob = stuff_prob
        self.split_dir = self.root / split
        images_rel = images_dir.format(split=split)
        self.images_dir = self.root / images_rel
        self.masks_dir = self.split_dir / "masks"
        layout = [
            (f"{images_rel}/", "<id>.jpg, one per annotated image"),
            *split_layout(split)[1:2],
            (f"{split}/{annotation_file}", split_layout(split)[2][1]),
        ]
        required = [images_rel, f"{split}/masks", f"{split}/{annotation_file}"]
        require_training_layout("COCO+LVIS", self.root, layout, required)
        self.annotation_path = self.split_dir / annotation_file
        self.samples = self._read_annotation(self.annotation_path)
        if allow_list is not None:
            self.samples = self._apply_allow_list(Path(allow_list))
        if not self.samples:
            raise ValueError(f"COCO+LVIS {split}: {self.annotation_path} lists no image")
        self._check_images()

    # ------------------------------------------------------------------ index
    @staticmethod
    def _read_annotation(path: Path) -> list[tuple[str, dict]]:
        annotation = read_pickle(path, "annotation")
        if not isinstance(annotation, dict):
            raise ValueError(f"COCO+LVIS annotation {path}: expected a dict image id -> entry, got {type(annotation).__name__}")
        samples = []
        for image_id, entry in annotation.items():
            if not isinstance(entry, dict) or "num_instance_masks" not in entry or "hierarchy" not in entry:
                raise ValueError(
                    f"COCO+LVIS annotation {path}: entry {image_id!r} must be a dict with 'num_instance_masks' "
                    f"and 'hierarchy', got {entry!r:.200}"
                )
            samples.append((str(image_id), entry))
        return sorted(samples, key=lambda item: item[0])

    def _apply_allow_list(self, allow_list: Path) -> list[tuple[str, dict]]:
        path = allow_list if allow_list.is_absolute() else self.split_dir / allow_list
        try:
            allowed = {str(v) for v in json.loads(path.read_text(encoding="utf-8"))}
        except FileNotFoundError:
            raise FileNotFoundError(f"COCO+LVIS allow list not found: {path}") from None
        except (json.JSONDecodeError, TypeError) as error:
            raise ValueError(f"COCO+LVIS allow list {path} must be a JSON list of image ids: {error}") from None
        unknown = allowed - {image_id for image_id, _ in self.samples}
        if unknown:
            log.warning("COCO+LVIS allow list %s: %d ids are not in %s (e.g. %s)", path, len(unknown),
                        self.annotation_path, sorted(unknown)[:3])
        return [(image_id, entry) for image_id, entry in self.samples if image_id in allowed]

    def _check_images(self) -> None:
        present = {p.name for p in self.images_dir.iterdir()}
        missing = [image_id for image_id, _ in self.samples if f"{image_id}.jpg" not in present]
        if missing:
            shown = ", ".join(str(self.images_dir / f"{i}.jpg") for i in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise FileNotFoundError(
                f"COCO+LVIS {self.split}: {len(missing)} of the {len(self.samples)} images annotated in "
                f"{self.annotation_path} are missing: {shown}{more}. Put the COCO 2017 images there as <id>.jpg "
                "or restrict the split with an allow list."
            )

    # ------------------------------------------------------------------ samples
    def __len__(self) -> int:
        return len(self.samples)

    def sample_object_ids(self, index: int) -> list[int]:
        # without an rng no stuff region is an object: the instances of the hierarchy are all
        return sorted(int(k) for k in self.samples[index][1]["hierarchy"])

    def get_sample(self, index: int, rng: np.random.Generator | None = None) -> InstanceSample:
        if not 0 <= index < len(self.samples):
            raise IndexError(f"COCO+LVIS {self.split} index {index} out of range [0, {len(self.samples)})")
        image_id, entry = self.samples[index]
        image_path = self.images_dir / f"{image_id}.jpg"
        mask_path = self.masks_dir / f"{image_id}.pickle"
        image = read_image(image_path)
        layers, mapping = decode_mask_layers(read_pickle(mask_path, "mask file"), mask_path)
        if layers.shape[:2] != image.shape[:2]:
            raise ValueError(
                f"COCO+LVIS {self.split}: mask layers of {mask_path} are {layers.shape[:2]} (H, W) but image "
                f"{image_path} is {image.shape[:2]}"
            )
        objects = self._objects(entry, mapping, mask_path)
        num_instances = int(entry["num_instance_masks"])
        if rng is not None and self.stuff_prob > 0.0 and rng.random() < self.stuff_prob:
            for obj_id in range(num_instances, len(mapping)):
                layer, value = mapping[obj_id]
                objects[obj_id] = ObjectNode(layer=layer, value=value)
        # stuff left out of ``objects`` becomes background: InstanceSample clears unmapped values
        try:
            return InstanceSample(image, layers, objects, name=f"{self.split}/{image_id}")
        except ValueError as error:
            raise ValueError(f"{error} (annotation {self.annotation_path}, masks {mask_path})") from None

    @staticmethod
    def _objects(entry: dict, mapping: list[tuple[int, int]], mask_path: Path) -> dict[int, ObjectNode]:
        num_instances = int(entry["num_instance_masks"])
        if num_instances > len(mapping):
            raise ValueError(
                f"mask file {mask_path} maps {len(mapping)} objects, but its annotation has {num_instances} instances"
            )
        objects = {}
        for obj_id, info in entry["hierarchy"].items():
            obj_id = int(obj_id)
            if not 0 <= obj_id < num_instances:
                raise ValueError(
                    f"annotation of {mask_path.stem}: hierarchy object {obj_id} is not an instance index "
                    f"(num_instance_masks = {num_instances})"
                )
            layer, value = mapping[obj_id]
            info = info or {}
            parent = info.get("parent")
            objects[obj_id] = ObjectNode(
                layer=layer,
                value=value,
                parent=None if parent is None else int(parent),
                children=[int(c) for c in info.get("children", [])],
            )
        return objects
