"""One annotated image as the training pipeline sees it: image, layered instance masks, object tree.

Layout (RITM `DSample`, reference §2.1): ``masks`` is an H×W×L integer array; every object and
every ignore region is a ``(layer, value)`` pair, so objects that overlap (a person and their
shirt, COCO+LVIS) live in different layers while disjoint ones share a layer. Objects form a tree
(``parent``/``children``); only roots are training targets in the released recipes. Values that
are neither an object nor an ignore region are background: they are zeroed on construction so
that "background" means the same thing everywhere (the reference does this on its first area
count).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np


@dataclass
class ObjectNode:
    """An object of the tree: where its pixels are (``layer``, ``value``) and its relatives."""

    layer: int
    value: int
    parent: int | None = None
    children: list[int] = field(default_factory=list)
    area: int = 0


class InstanceSample:
    """An image with its instances; ``augment`` returns a new sample, the source stays untouched.

    Args:
        image: uint8 H×W×3 RGB.
        masks: integer H×W or H×W×L encoded masks (0 = background).
        objects: object id -> ObjectNode; ``area`` is recomputed from the masks.
        ignore: (layer, value) pairs marking "don't care" pixels (-1 in object masks).
        name: identifies the sample in error messages and evaluation results.
    """

    def __init__(
        self,
        image: np.ndarray,
        masks: np.ndarray,
        objects: Mapping[int, ObjectNode],
        ignore: Iterable[tuple[int, int]] = (),
        name: str = "",
    ) -> None:
        self.name = name
        if masks.ndim == 2:
            masks = masks[:, :, None]
        self._check(image, masks)
        self.image = image
        self.masks = masks
        self.ignore = [(int(layer), int(value)) for layer, value in ignore]
        self.objects: dict[int, ObjectNode] = _copy_tree(objects)
        self._check_tree()
        self._ignore_mask: np.ndarray | None = None
        self._background_mask: np.ndarray | None = None
        self._clear_unmapped_values_and_count_areas()

    @classmethod
    def from_label_map(
        cls,
        image: np.ndarray,
        label_map: np.ndarray,
        ignore_values: Iterable[int] = (),
        name: str = "",
    ) -> InstanceSample:
        """One root object per non-zero value of an H×W map (sorted), except ``ignore_values``."""
        ignore_values = {int(v) for v in ignore_values}
        values = [v for v in value_counts(label_map) if v != 0 and v not in ignore_values]
        objects = {i: ObjectNode(layer=0, value=v) for i, v in enumerate(values)}
        return cls(image, label_map, objects, ignore=[(0, v) for v in sorted(ignore_values)], name=name)

    # ------------------------------------------------------------------ validation
    def _where(self) -> str:
        return f"sample {self.name!r}" if self.name else "sample"

    def _check(self, image: np.ndarray, masks: np.ndarray) -> None:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"{self._where()}: image must be a uint8 H×W×3 RGB array, got {got}")
        if not np.issubdtype(masks.dtype, np.integer) or masks.ndim != 3:
            raise ValueError(
                f"{self._where()}: masks must be an integer H×W×L array, got {masks.dtype} {masks.shape}"
            )
        if masks.shape[:2] != image.shape[:2]:
            raise ValueError(
                f"{self._where()}: image size {image.shape[:2]} does not match mask size {masks.shape[:2]}"
            )

    def _check_tree(self) -> None:
        num_layers = self.masks.shape[2]
        for obj_id, node in self.objects.items():
            if not 0 <= node.layer < num_layers:
                raise ValueError(f"{self._where()}: object {obj_id} uses layer {node.layer}, masks have {num_layers}")
        for layer, value in self.ignore:
            if not 0 <= layer < num_layers:
                raise ValueError(f"{self._where()}: ignore region ({layer}, {value}) uses a missing layer")
        for obj_id, node in self.objects.items():
            parent = self.objects.get(node.parent) if node.parent is not None else None
            if node.parent is not None and (parent is None or obj_id not in parent.children):
                raise ValueError(
                    f"{self._where()}: object {obj_id} has parent {node.parent}, which does not list it as a child"
                )
            for child in node.children:
                if child not in self.objects or self.objects[child].parent != obj_id:
                    raise ValueError(
                        f"{self._where()}: object {obj_id} lists child {child}, whose parent is not {obj_id}"
                    )

    # ------------------------------------------------------------------ masks
    @property
    def shape(self) -> tuple[int, int]:
        """(H, W)."""
        return self.image.shape[:2]

    @property
    def ignore_mask(self) -> np.ndarray:
        """H×W bool: pixels of any ignore region."""
        if self._ignore_mask is None:
            mask = np.zeros(self.shape, dtype=bool)
            for layer, value in self.ignore:
                mask |= self.masks[:, :, layer] == value
            self._ignore_mask = mask
        return self._ignore_mask

    @property
    def background_mask(self) -> np.ndarray:
        """H×W bool: pixels that no layer labels (ignore regions are not background)."""
        if self._background_mask is None:
            masks = self.masks
            self._background_mask = masks[:, :, 0] == 0 if masks.shape[2] == 1 else ~masks.any(axis=2)
        return self._background_mask

    def get_object_mask(self, obj_id: int) -> np.ndarray:
        """H×W int32: 1 on the object, 0 elsewhere, -1 on ignore regions (which win over the object)."""
        if obj_id not in self.objects:
            raise KeyError(f"{self._where()}: no object {obj_id} (objects: {sorted(self.objects)})")
        node = self.objects[obj_id]
        mask = (self.masks[:, :, node.layer] == node.value).astype(np.int32)
        if self.ignore:
            mask[self.ignore_mask] = -1
        return mask

    @property
    def object_ids(self) -> list[int]:
        return list(self.objects)

    @property
    def root_objects(self) -> list[int]:
        """Objects without a parent: the training targets when the hierarchy is not used."""
        return [obj_id for obj_id, node in self.objects.items() if node.parent is None]

    def __len__(self) -> int:
        return len(self.objects)

    # ------------------------------------------------------------------ edits
    def copy(self) -> InstanceSample:
        """A copy with its own object tree; the image and masks arrays are shared (never written)."""
        result = copy.copy(self)
        result.objects = _copy_tree(self.objects)
        return result

    def _clear_unmapped_values_and_count_areas(self) -> None:
        """One histogram per layer gives both the stray values to zero and every object's area."""
        copied = False
        for layer in range(self.masks.shape[2]):
            plane = self.masks[:, :, layer]
            nodes = [n for n in self.objects.values() if n.layer == layer]
            known = {n.value for n in nodes} | {v for lay, v in self.ignore if lay == layer}
            counts = value_counts(plane)
            stray = [v for v in counts if v != 0 and v not in known]
            if stray:
                if not copied:  # never write into the caller's array
                    self.masks, copied = self.masks.copy(), True
                plane = self.masks[:, :, layer]
                plane[_isin(plane, stray)] = 0
                counts = {v: c for v, c in counts.items() if v not in stray}
            for node in nodes:
                node.area = counts.get(node.value, 0)

    def remove_object(self, obj_id: int) -> None:
        """Drop an object from the tree; its children move up to its parent (pixels stay)."""
        node = self.objects.pop(obj_id)
        for child in node.children:
            self.objects[child].parent = node.parent
        if node.parent is not None:
            parent = self.objects[node.parent]
            parent.children = [c for c in parent.children if c != obj_id] + node.children

    def remove_small_objects(self, min_area: int) -> None:
        """Drop (in place) objects with fewer than ``min_area`` pixels, re-parenting their children."""
        for obj_id in [i for i, n in self.objects.items() if n.area < min_area]:
            self.remove_object(obj_id)

    def augment(self, transform: Callable[..., dict[str, Any]]) -> InstanceSample:
        """Apply an albumentations pipeline to the image and all mask layers at once.

        The pipeline must treat ``mask`` with nearest-neighbour interpolation (albumentations'
        default) so that encoded values survive; objects left with no pixels are dropped.
        """
        out = transform(image=self.image, mask=self.masks)
        image, masks = out["image"], out["mask"]
        if masks.ndim == 2:
            masks = masks[:, :, None]
        result = InstanceSample(image, masks, self.objects, self.ignore, self.name)
        result.remove_small_objects(1)
        return result


def _copy_tree(objects: Mapping[int, ObjectNode]) -> dict[int, ObjectNode]:
    """An independent copy of an object tree (its nodes hold ints and a list of ints; deepcopy is slow)."""
    tree = {}
    for obj_id, node in objects.items():
        node = copy.copy(node)
        node.children = list(node.children)
        tree[int(obj_id)] = node
    return tree


def value_counts(plane: np.ndarray) -> dict[int, int]:
    """{value: pixel count} of the values present in an integer array.

    uint8 planes use an OpenCV histogram (exact below 2**24 pixels) and other small non-negative
    ranges ``np.bincount``: both are several times faster than ``np.unique`` on label maps.
    """
    if plane.dtype == np.uint8 and 0 < plane.size < 2**24:
        hist = cv2.calcHist([np.ascontiguousarray(plane).reshape(plane.shape[0], -1)], [0], None, [256], [0, 256])
        counts = hist.ravel().astype(np.int64)
    elif plane.dtype.itemsize <= 2 and plane.size and plane.min() >= 0:
        counts = np.bincount(plane.ravel())
    else:
        values, counts = np.unique(plane, return_counts=True)
        return dict(zip(values.tolist(), counts.tolist()))
    present = np.flatnonzero(counts)
    return dict(zip(present.tolist(), counts[present].tolist()))


def _isin(plane: np.ndarray, values: list[int]) -> np.ndarray:
    """Boolean mask of ``plane`` pixels equal to any of ``values``: a lookup table for uint8."""
    if plane.dtype == np.uint8:
        table = np.zeros(256, np.uint8)
        table[values] = 1
        return cv2.LUT(np.ascontiguousarray(plane), table).astype(bool)
    return np.isin(plane, values)
