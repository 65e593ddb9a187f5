"""How COCO and LVIS masks of one image become COCO+LVIS objects (reference §6, RITM's conversion).

Pure functions on boolean H×W masks, shared by the raw-annotation conversion and the tests:

- ``merge_instances``: drop a COCO mask that an LVIS mask duplicates (box IoU > 0.7 and mask
  IoU > 0.7), and an LVIS mask that a *later* LVIS mask duplicates (box IoU > 0.7, mask IoU > 0.85);
  the image's instances are the kept COCO masks, then the kept LVIS masks.
- ``build_hierarchy``: parts under wholes by containment, each attached to the deepest node.
- ``stuff_remainders``: stuff regions minus every instance, kept when larger than 500 px.
- ``encode_layers``: pack masks into as few uint8 layers as possible (PNG-encoded).

"Box IoU" is the reference's: the product of the row-interval IoU and the column-interval IoU of
the inclusive pixel boxes (not the area IoU of the two boxes; the two differ for shifted boxes).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from iseg.interaction.metrics import iou_counts

Box = tuple[int, int, int, int]  # (row_min, row_max, col_min, col_max), inclusive

DUPLICATE_BOX_IOU = 0.7
COCO_DUPLICATE_MASK_IOU = 0.7
LVIS_DUPLICATE_MASK_IOU = 0.85
PARENT_BOX_COVER = 0.7
PARENT_MASK_COVER = 0.8
MIN_STUFF_AREA = 500
MAX_OBJECTS_PER_LAYER = 255


def mask_box(mask: np.ndarray) -> Box:
    """Inclusive (row_min, row_max, col_min, col_max) of a non-empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        raise ValueError("mask_box: the mask is empty")
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _interval_overlap(a: int, b: int, c: int, d: int) -> int:
    return max(0, min(b, d) - max(a, c) + 1)


def box_iou(box_a: Box, box_b: Box) -> float:
    """The reference's box IoU: row-interval IoU × column-interval IoU (inclusive pixel bounds)."""
    result = 1.0
    for lo_a, hi_a, lo_b, hi_b in ((box_a[0], box_a[1], box_b[0], box_b[1]), (box_a[2], box_a[3], box_b[2], box_b[3])):
        union = max(1e-6, max(hi_a, hi_b) - min(lo_a, lo_b) + 1)
        result *= _interval_overlap(lo_a, hi_a, lo_b, hi_b) / union
    return result


def mask_iou(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    """IoU of two boolean masks (the protocol's counts); two empty masks are not duplicates (0.0)."""
    intersection, union = iou_counts(mask_a, mask_b)
    return intersection / union if union else 0.0


def _duplicates(mask_a: np.ndarray, box_a: Box, mask_b: np.ndarray, box_b: Box, mask_threshold: float) -> bool:
    # the cheap box test first, as the reference does: most pairs stop there
    return box_iou(box_a, box_b) > DUPLICATE_BOX_IOU and mask_iou(mask_a, mask_b) > mask_threshold


def merge_instances(
    coco_masks: Sequence[np.ndarray], lvis_masks: Sequence[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(COCO masks that no LVIS mask duplicates, LVIS masks that no later LVIS mask duplicates).

    The instances of the image are the first list followed by the second.
    Inputs are already filtered by area (≥ 80 px in the reference); order matters for the LVIS
    rule (of two duplicates, the later one is kept).
    """
    coco_boxes = [mask_box(m) for m in coco_masks]
    lvis_boxes = [mask_box(m) for m in lvis_masks]
    kept_coco = [
        coco
        for coco, coco_box in zip(coco_masks, coco_boxes)
        if not any(_duplicates(lvis, lvis_box, coco, coco_box, COCO_DUPLICATE_MASK_IOU)
                   for lvis, lvis_box in zip(lvis_masks, lvis_boxes))
    ]
    kept_lvis = []
    for i, (lvis, lvis_box) in enumerate(zip(lvis_masks, lvis_boxes)):
        later = zip(lvis_masks[i + 1 :], lvis_boxes[i + 1 :])
        if not any(_duplicates(lvis, lvis_box, other, other_box, LVIS_DUPLICATE_MASK_IOU) for other, other_box in later):
            kept_lvis.append(lvis)
    return kept_coco, kept_lvis


def build_hierarchy(masks: Sequence[np.ndarray]) -> dict[int, dict | None]:
    """Object tree of the reference annotation: ``{index: None | {'children', 'parent', 'node_level'}}``.

    Masks are visited by area, largest first (equal areas: the later index first, as the
    reference's reversed stable sort). Mask j goes under an earlier-visited mask i when j's box is
    ≥ 70 % inside i's box and > 80 % of j's pixels are inside i; among i's descendants that are at
    least as large as j, the deepest one that also contains j becomes its parent (depth-first, in
    the order children were attached). Each mask gets at most one parent, the first i that
    contains it. A root without children is stored as None.
    """
    areas = [int(np.count_nonzero(m)) for m in masks]
    boxes = [mask_box(m) for m in masks]
    order = sorted(range(len(masks)), key=lambda k: areas[k])[::-1]
    children: dict[int, list[int]] = {k: [] for k in range(len(masks))}
    parents: list[int | None] = [None] * len(masks)
    levels = [0] * len(masks)

    def contains(i: int, j: int) -> bool:
        box_i, box_j = boxes[i], boxes[j]
        box_j_area = (box_j[1] - box_j[0] + 1) * (box_j[3] - box_j[2] + 1)
        box_cover = _interval_overlap(box_i[0], box_i[1], box_j[0], box_j[1]) * _interval_overlap(
            box_i[2], box_i[3], box_j[2], box_j[3]
        )
        if box_cover / box_j_area < PARENT_BOX_COVER:
            return False
        return np.count_nonzero(masks[i] & masks[j]) / areas[j] > PARENT_MASK_COVER

    def deepest_container(node: int, j: int) -> int | None:
        for child in children[node]:
            if areas[child] < areas[j]:
                continue
            found = deepest_container(child, j)
            if found is not None:
                return found
        return node if contains(node, j) else None

    for pos, i in enumerate(order[:-1]):
        for j in order[pos + 1 :]:
            if parents[j] is not None or not contains(i, j):
                continue
            parent = deepest_container(i, j)
            children[parent].append(j)
            parents[j] = parent
            levels[j] = levels[parent] + 1

    hierarchy: dict[int, dict | None] = {}
    for k in range(len(masks)):
        if parents[k] is None and not children[k]:
            hierarchy[k] = None
        else:
            hierarchy[k] = {"children": children[k], "parent": parents[k], "node_level": levels[k]}
    return hierarchy


def stuff_remainders(stuff_masks: Sequence[np.ndarray], instance_masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each stuff region minus the union of all instances, kept if more than 500 pixels remain."""
    if not stuff_masks:
        return []
    covered = np.logical_or.reduce(list(instance_masks)) if instance_masks else np.zeros_like(stuff_masks[0])
    remainders = [stuff & ~covered for stuff in stuff_masks]
    return [r for r in remainders if np.count_nonzero(r) > MIN_STUFF_AREA]


def encode_layers(masks: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """(PNG-encoded uint8 layers, mapping object index -> (layer, value)): the ``masks/<id>.pickle`` payload.

    Largest masks are placed first (equal areas: the later index first); each goes into the first
    layer where it overlaps nothing and that holds fewer than 255 objects, else into a new layer.
    Values in a layer count up from 1 in placement order.
    """
    if not masks:
        raise ValueError("encode_layers: no masks to encode")
    layers = [np.zeros(masks[0].shape, np.uint8)]
    counts = [0]
    mapping: list[tuple[int, int] | None] = [None] * len(masks)
    order = sorted(range(len(masks)), key=lambda k: int(np.count_nonzero(masks[k])))[::-1]
    for k in order:
        mask = masks[k]
        for layer_index, layer in enumerate(layers):
            if counts[layer_index] < MAX_OBJECTS_PER_LAYER and not layer[mask].any():
                break
        else:
            layers.append(np.zeros_like(layers[0]))
            counts.append(0)
            layer_index = len(layers) - 1
        counts[layer_index] += 1
        layers[layer_index][mask] = counts[layer_index]
        mapping[k] = (layer_index, counts[layer_index])
    encoded = []
    for layer in layers:
        ok, png = cv2.imencode(".png", layer)
        if not ok:
            raise RuntimeError("encode_layers: OpenCV could not PNG-encode a mask layer")
        encoded.append(png)
    return encoded, mapping  # type: ignore[return-value]
