"""InstanceSample: layered masks, object tree, ignore regions, augmentation and pruning."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest

from iseg.data.sample import InstanceSample, ObjectNode, value_counts


def _image(height: int = 40, width: int = 60) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _layered_sample() -> InstanceSample:
    """A person (layer 0, value 1) with a shirt (layer 1, value 1) holding a logo (layer 2, value 1),
    a separate ball (layer 0, value 2) and an ignore blob (layer 0, value 9)."""
    masks = np.zeros((40, 60, 3), np.uint8)
    masks[5:35, 5:25, 0] = 1  # person
    masks[10:25, 8:22, 1] = 1  # shirt, inside the person
    masks[12:16, 10:14, 2] = 1  # logo, inside the shirt
    masks[5:15, 40:55, 0] = 2  # ball
    masks[30:36, 40:46, 0] = 9  # ignore blob
    objects = {
        0: ObjectNode(layer=0, value=1, children=[1]),
        1: ObjectNode(layer=1, value=1, parent=0, children=[2]),
        2: ObjectNode(layer=2, value=1, parent=1),
        3: ObjectNode(layer=0, value=2),
    }
    return InstanceSample(_image(), masks, objects, ignore=[(0, 9)], name="layered")


def test_from_label_map_builds_roots_areas_and_ignore() -> None:
    labels = np.zeros((40, 60), np.uint8)
    labels[0:10, 0:10] = 3
    labels[20:30, 20:25] = 7
    labels[35:40, 0:4] = 255
    sample = InstanceSample.from_label_map(_image(), labels, ignore_values=[255], name="flat")
    assert sample.masks.shape == (40, 60, 1)
    assert sorted(sample.root_objects) == [0, 1] and len(sample) == 2
    assert [sample.objects[i].value for i in (0, 1)] == [3, 7]
    assert [sample.objects[i].area for i in (0, 1)] == [100, 50]
    mask = sample.get_object_mask(1)
    assert mask.dtype == np.int32 and set(np.unique(mask)) == {-1, 0, 1}
    assert (mask == 1).sum() == 50 and (mask == -1).sum() == 20
    assert not sample.background_mask[35:40, 0:4].any(), "ignore pixels are not background"


def test_ignore_wins_over_object_pixels() -> None:
    labels = np.zeros((40, 60), np.uint8)
    labels[0:10, 0:10] = 1
    masks = np.stack([labels, np.zeros_like(labels)], axis=2)
    masks[0:5, 0:5, 1] = 4  # ignore region drawn in another layer, over the object
    sample = InstanceSample(_image(), masks, {0: ObjectNode(0, 1)}, ignore=[(1, 4)])
    mask = sample.get_object_mask(0)
    assert (mask[0:5, 0:5] == -1).all() and (mask == 1).sum() == 75


def test_size_mismatch_names_sample_and_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"'img_7'.*\(40, 60\).*\(40, 59\)"):
        InstanceSample(_image(), np.zeros((40, 59), np.uint8), {}, name="img_7")


@pytest.mark.parametrize(
    ("image", "masks", "message"),
    [
        (np.zeros((40, 60, 3), np.float32), np.zeros((40, 60), np.uint8), "uint8"),
        (np.zeros((40, 60), np.uint8), np.zeros((40, 60), np.uint8), "H×W×3"),
        (np.zeros((40, 60, 3), np.uint8), np.zeros((40, 60), np.float32), "integer"),
    ],
)
def test_bad_arrays_are_rejected(image: np.ndarray, masks: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InstanceSample(image, masks, {}, name="bad")


def test_inconsistent_tree_and_layers_are_rejected() -> None:
    masks = np.zeros((40, 60, 1), np.uint8)
    with pytest.raises(ValueError, match="object 0 uses layer 2"):
        InstanceSample(_image(), masks, {0: ObjectNode(2, 1)})
    with pytest.raises(ValueError, match="object 1 has parent 0"):
        InstanceSample(_image(), masks, {0: ObjectNode(0, 1), 1: ObjectNode(0, 2, parent=0)})
    with pytest.raises(ValueError, match="lists child 1"):
        InstanceSample(_image(), masks, {0: ObjectNode(0, 1, children=[1]), 1: ObjectNode(0, 2)})
    with pytest.raises(KeyError, match="no object 5"):
        InstanceSample(_image(), masks, {}).get_object_mask(5)


def test_unmapped_values_become_background_without_touching_the_input() -> None:
    labels = np.zeros((40, 60), np.uint8)
    labels[0:10, 0:10] = 1
    labels[20:30, 20:30] = 5  # listed nowhere
    sample = InstanceSample(_image(), labels, {0: ObjectNode(0, 1)})
    assert (sample.masks[20:30, 20:30, 0] == 0).all() and sample.background_mask[20:30, 20:30].all()
    assert (labels[20:30, 20:30] == 5).all(), "the caller's array must not be modified"


def test_layered_tree_and_masks() -> None:
    sample = _layered_sample()
    assert sample.root_objects == [0, 3]
    assert [sample.objects[i].area for i in range(4)] == [600, 210, 16, 150]
    person, shirt = sample.get_object_mask(0), sample.get_object_mask(1)
    assert ((shirt == 1) <= (person == 1)).all(), "the shirt lies inside the person"
    assert (sample.get_object_mask(3)[30:36, 40:46] == -1).all()


def test_remove_small_objects_reparents_children() -> None:
    sample = _layered_sample()
    sample.remove_small_objects(200)  # drops the ball (150) and the logo (16)
    assert sorted(sample.objects) == [0, 1]
    assert sample.objects[1].children == []
    sample = _layered_sample()
    sample.remove_object(1)  # the shirt: its logo moves up to the person
    assert sample.objects[2].parent == 0 and sample.objects[0].children == [2]


def test_copy_has_its_own_tree() -> None:
    sample = _layered_sample()
    clone = sample.copy()
    clone.remove_small_objects(200)
    assert len(clone) == 2 and len(sample) == 4 and clone.masks is sample.masks


def test_augment_drops_vanished_objects_and_reparents() -> None:
    sample = _layered_sample()
    crop = A.Compose([A.Crop(x_min=8, y_min=10, x_max=22, y_max=25)], p=1.0)  # exactly the shirt's box
    out = sample.augment(crop)
    assert out.image.shape == (15, 14, 3) and out.masks.shape == (15, 14, 3)
    assert sorted(out.objects) == [0, 1, 2], "the ball is gone"
    assert out.objects[0].area == 15 * 14 and out.objects[1].area == 15 * 14
    crop = A.Compose([A.Crop(x_min=0, y_min=26, x_max=30, y_max=40)], p=1.0)  # below the shirt
    out = sample.augment(crop)
    assert sorted(out.objects) == [0] and out.objects[0].children == []
    assert len(sample) == 4 and sample.masks.shape == (40, 60, 3), "the source sample is unchanged"


def test_augment_keeps_encoded_values_with_nearest_resize() -> None:
    sample = _layered_sample()
    out = sample.augment(A.Compose([A.Resize(57, 83, interpolation=cv2.INTER_LINEAR)], p=1.0))
    assert out.masks.shape == (57, 83, 3)
    for layer in range(3):
        assert set(np.unique(out.masks[:, :, layer])) <= set(np.unique(sample.masks[:, :, layer]))
    assert out.objects[0].area == int((out.masks[:, :, 0] == 1).sum())
    assert (out.get_object_mask(3) == -1).any(), "the ignore region follows the masks"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int8, np.int64])
def test_value_counts_match_numpy_unique(dtype) -> None:
    """The histogram fast paths (uint8 OpenCV, small-int bincount) agree with np.unique, layer views included."""
    rng = np.random.default_rng(0)
    low = -3 if np.issubdtype(dtype, np.signedinteger) else 0
    masks = rng.integers(low, 100, (37, 53, 3)).astype(dtype)
    masks[masks % 7 == 0] = 0
    for plane in (masks[:, :, 1], masks[:, :, 0], masks):
        values, counts = np.unique(plane, return_counts=True)
        assert value_counts(plane) == dict(zip(values.tolist(), counts.tolist()))
    assert value_counts(np.zeros((0, 4), dtype)) == {}


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
def test_stray_values_are_cleared_per_layer_and_areas_follow(dtype) -> None:
    masks = np.zeros((40, 60, 2), dtype)
    masks[0:10, 0:10, 0] = 1
    masks[0:5, 0:5, 1] = 1  # layer 1 value 1 is an object; layer 0 value 2 is not
    masks[20:30, 20:30, 0] = 2
    masks[30:40, 0:3, 1] = 2  # ignore region
    objects = {0: ObjectNode(0, 1), 1: ObjectNode(1, 1), 2: ObjectNode(1, 7)}
    sample = InstanceSample(_image(), masks, objects, ignore=[(1, 2)])
    assert (sample.masks[20:30, 20:30, 0] == 0).all() and (masks[20:30, 20:30, 0] == 2).all()
    assert (sample.masks[30:40, 0:3, 1] == 2).all(), "ignore values are kept"
    assert [sample.objects[i].area for i in range(3)] == [100, 25, 0]
    assert sample.background_mask.sum() == 40 * 60 - 100 - 30
    assert sample.masks.dtype == dtype
