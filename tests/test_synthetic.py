"""Synthetic shapes dataset and the InteractiveDataset pipeline built on it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from iseg.data.interactive_dataset import InteractiveDataset
from iseg.data.sample import InstanceSample
from iseg.data.synthetic import IGNORE_VALUE, SyntheticShapesDataset
from iseg.data.transforms import coco_lvis_train_augmentator
from iseg.interaction.sampler import MultiPointSampler

SIZE = (64, 96)


def _dataset(split: str = "train", **kwargs) -> SyntheticShapesDataset:
    kwargs.setdefault("points_sampler", MultiPointSampler(max_num_points=24, prob_gamma=0.8, merge_objects_prob=0.15))
    return SyntheticShapesDataset(split=split, num_samples=40, image_size=SIZE, seed=0, **kwargs)


def test_samples_are_deterministic_per_index_and_splits_differ() -> None:
    first, again = _dataset().get_sample(3), _dataset().get_sample(3)
    assert np.array_equal(first.image, again.image) and np.array_equal(first.masks, again.masks)
    assert first.name == "train_000003"
    val = _dataset("val").get_sample(3)
    assert not np.array_equal(first.image, val.image)
    assert not np.array_equal(first.image, _dataset().get_sample(4).image)
    assert not np.array_equal(first.image, _dataset(base_seed=1).get_sample(3).image)


def test_instances_counts_sizes_and_ignore() -> None:
    dataset = _dataset()
    with_ignore = 0
    for index in range(dataset.num_samples):
        sample = dataset.get_sample(index)
        assert sample.image.shape == (*SIZE, 3) and sample.image.dtype == np.uint8
        assert sample.masks.shape == (*SIZE, 1)
        assert 2 <= len(sample) <= 5 and sample.root_objects == sample.object_ids
        for obj_id in sample.object_ids:
            assert (sample.get_object_mask(obj_id) == 1).sum() >= 60, f"{sample.name}: object {obj_id} too small"
        values = set(np.unique(sample.masks).tolist()) - {0, IGNORE_VALUE}
        assert values == {n.value for n in sample.objects.values()}
        with_ignore += bool(sample.ignore_mask.any())
    assert 0 < with_ignore < dataset.num_samples
    assert _dataset(num_objects=(3, 3)).get_sample(0).__len__() == 3


def test_objects_have_distinct_appearance() -> None:
    """Each instance's mean colour differs from the background's: the task is learnable."""
    sample = _dataset().get_sample(0)
    background = sample.image[sample.background_mask].mean(axis=0)
    for obj_id in sample.object_ids:
        colour = sample.image[sample.get_object_mask(obj_id) == 1].mean(axis=0)
        assert np.linalg.norm(colour - background) > 20


def test_wrong_mask_size_is_reported() -> None:
    sample = _dataset().get_sample(0)
    with pytest.raises(ValueError, match=r"train_000000.*\(64, 96\).*\(64, 95\)"):
        InstanceSample(sample.image, sample.masks[:, :95], sample.objects, name=sample.name)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="split"):
        _dataset("test")
    with pytest.raises(ValueError, match="num_objects"):
        _dataset(num_objects=(3, 2))
    with pytest.raises(ValueError, match="could not place 60 shapes"):
        _dataset(num_objects=(60, 60)).get_sample(0)
    with pytest.raises(IndexError, match="out of range"):
        _dataset().get_sample(40)


def test_items_have_the_training_layout() -> None:
    dataset = _dataset(augmentator=coco_lvis_train_augmentator(crop_size=(48, 80)), min_object_area=30)
    dataset.seed(0)
    for index in range(10):
        item = dataset[index]
        assert item["images"].shape == (3, 48, 80) and item["images"].dtype.is_floating_point
        assert 0.0 <= float(item["images"].min()) and float(item["images"].max()) <= 1.0
        assert item["points"].shape == (48, 3)
        assert item["instances"].shape == (1, 48, 80)
        assert set(item["instances"].unique().tolist()) <= {-1.0, 0.0, 1.0}
        clicks = item["points"][item["points"][:, 0] >= 0]
        assert (clicks[:, 0] < 48).all() and (clicks[:, 1] < 80).all()


def test_items_repeat_for_a_seed() -> None:
    dataset = _dataset(augmentator=coco_lvis_train_augmentator(crop_size=(48, 80)), epoch_len=100)
    assert len(dataset) == 100
    dataset.seed(3)
    first = [dataset[0] for _ in range(3)]
    dataset.seed(3)
    again = [dataset[0] for _ in range(3)]
    assert all(all((a[k] == b[k]).all() for k in a) for a, b in zip(first, again))
    assert not (first[0]["images"] == first[1]["images"]).all(), "epoch_len draws a random sample per item"


def test_index_probs_pick_the_sample() -> None:
    dataset = _dataset()
    probs = np.zeros(dataset.num_samples)
    probs[7] = 1.0
    dataset.set_index_probs(probs)
    assert np.allclose(dataset[0]["images"].permute(1, 2, 0).numpy() * 255, dataset.get_sample(7).image)
    with pytest.raises(ValueError, match="40 non-negative values"):
        dataset.set_index_probs(np.ones(3) / 3)


def test_min_object_area_prunes_targets_before_sampling() -> None:
    dataset = _dataset(min_object_area=10_000)  # larger than any object: every item is background only
    dataset.seed(0)
    item = dataset[0]
    assert (item["instances"] <= 0).all() and (item["points"][:24] == -1).all()


class _OneSample(InteractiveDataset):
    """One hand-made sample, so the augmentation loop can be driven exactly."""

    def __init__(self, **kwargs) -> None:
        labels = np.zeros((32, 32), np.uint8)
        labels[8:24, 8:24] = 1
        self.sample = InstanceSample.from_label_map(np.zeros((32, 32, 3), np.uint8), labels)
        super().__init__(MultiPointSampler(max_num_points=4), **kwargs)

    @property
    def num_samples(self) -> int:
        return 1

    def get_sample(self, index: int) -> InstanceSample:
        return self.sample


class _EraseFirstTries:
    """Augmentation that wipes every object on its first ``tries`` calls."""

    def __init__(self, tries: int) -> None:
        self.tries, self.calls = tries, 0

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> dict:
        self.calls += 1
        return {"image": image, "mask": np.zeros_like(mask) if self.calls <= self.tries else mask}


def test_pruning_leaves_the_source_sample_alone() -> None:
    dataset = _OneSample(min_object_area=10_000)
    assert (dataset[0]["instances"] == 0).all() and len(dataset.sample) == 1


def test_augmentation_retries_until_an_object_survives() -> None:
    augmentator = _EraseFirstTries(tries=5)
    dataset = _OneSample(augmentator=augmentator, keep_background_prob=0.0)
    assert (dataset[0]["instances"] == 1).any() and augmentator.calls == 6
    augmentator = _EraseFirstTries(tries=5)
    dataset = _OneSample(augmentator=augmentator, keep_background_prob=-1.0)  # < 0: keep whatever comes
    assert (dataset[0]["instances"] == 0).all() and augmentator.calls == 1


def test_keep_background_prob_is_the_stop_rate() -> None:
    augmentator = _EraseFirstTries(tries=10**9)
    dataset = _OneSample(augmentator=augmentator, keep_background_prob=0.25, seed=0)
    for _ in range(400):
        dataset[0]
    assert 400 / augmentator.calls == pytest.approx(0.25, abs=0.04)


def test_evaluation_view() -> None:
    dataset = _dataset("val")
    view = dataset.evaluation_view(max_objects=7)
    assert len(view) == 7
    names = set()
    for image, gt, name in view:
        assert image.shape == (*SIZE, 3) and image.dtype == np.uint8
        assert gt.shape == SIZE and gt.dtype == np.int8 and (gt == 1).any()
        assert set(np.unique(gt).tolist()) <= {-1, 0, 1}
        names.add(name)
    assert len(names) == 7 and "val_000000#0" in names
    everything = dataset.evaluation_view()
    assert len(everything) == sum(len(dataset.get_sample(i)) for i in range(dataset.num_samples))


def test_flat_variant_and_object_scale() -> None:
    sampler = MultiPointSampler(max_num_points=4)
    flat = SyntheticShapesDataset(sampler, num_samples=4, image_size=(96, 144), textured=False, object_scale=(0.3, 0.4))
    textured = SyntheticShapesDataset(sampler, num_samples=4, image_size=(96, 144))
    for index in range(4):
        sample = flat.get_sample(index)
        # flat fills: every instance is nearly one colour (only the blur/noise varies it)
        for obj in sample.root_objects:
            interior = cv2.erode((sample.get_object_mask(obj) == 1).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            if interior.sum() > 20:  # away from the blurred outline
                assert sample.image[interior].astype(np.float32).std(axis=0).max() < 8
        # larger shapes than the default range: each instance covers a sizeable part of the image
        assert min(np.count_nonzero(sample.get_object_mask(o) == 1) for o in sample.root_objects) > 200
    patterned = [textured.get_sample(i) for i in range(4)]
    assert max(s.image[s.background_mask].std() for s in patterned) > max(
        flat.get_sample(i).image[flat.get_sample(i).background_mask].std() for i in range(4)
    )
    with pytest.raises(ValueError, match="object_scale"):
        SyntheticShapesDataset(sampler, object_scale=(0.3, 0.7))
