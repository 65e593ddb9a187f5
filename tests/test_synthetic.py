"""Synthetic shapes source and the InteractiveDataset pipeline (source + sampler + augmentation) built on it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from iseg.data.interactive_dataset import InteractiveDataset
from iseg.data.sample import InstanceSample
from iseg.data.source import SampleSource
from iseg.data.synthetic import IGNORE_VALUE, SyntheticShapesSource
from iseg.data.transforms import coco_lvis_train_augmentator
from iseg.interaction.sampler import InteractionSampler, MultiPointSampler

SIZE = (64, 96)


def _source(split: str = "train", **kwargs) -> SyntheticShapesSource:
    return SyntheticShapesSource(split=split, num_samples=40, image_size=SIZE, **kwargs)


def _dataset(split: str = "train", source: SampleSource | None = None, **kwargs) -> InteractiveDataset:
    kwargs.setdefault("sampler", MultiPointSampler(max_num_points=24, prob_gamma=0.8, merge_objects_prob=0.15))
    return InteractiveDataset(source or _source(split), seed=0, **kwargs)


def test_samples_are_deterministic_per_index_and_splits_differ() -> None:
    first, again = _source().get_sample(3), _source().get_sample(3, np.random.default_rng(1))
    assert np.array_equal(first.image, again.image) and np.array_equal(first.masks, again.masks)
    assert first.name == "train_000003"
    val = _source("val").get_sample(3)
    assert not np.array_equal(first.image, val.image)
    assert not np.array_equal(first.image, _source().get_sample(4).image)
    assert not np.array_equal(first.image, _source(base_seed=1).get_sample(3).image)


def test_instances_counts_sizes_and_ignore() -> None:
    source = _source()
    with_ignore = 0
    for index in range(len(source)):
        sample = source.get_sample(index)
        assert sample.image.shape == (*SIZE, 3) and sample.image.dtype == np.uint8
        assert sample.masks.shape == (*SIZE, 1)
        assert 2 <= len(sample) <= 5 and sample.root_objects == sample.object_ids
        for obj_id in sample.object_ids:
            assert (sample.get_object_mask(obj_id) == 1).sum() >= 60, f"{sample.name}: object {obj_id} too small"
        values = set(np.unique(sample.masks).tolist()) - {0, IGNORE_VALUE}
        assert values == {n.value for n in sample.objects.values()}
        with_ignore += bool(sample.ignore_mask.any())
    assert 0 < with_ignore < len(source)
    assert len(_source(num_objects=(3, 3)).get_sample(0)) == 3


def test_objects_have_distinct_appearance() -> None:
    """Each instance's mean colour differs from the background's: the task is learnable."""
    sample = _source().get_sample(0)
    background = sample.image[sample.background_mask].mean(axis=0)
    for obj_id in sample.object_ids:
        colour = sample.image[sample.get_object_mask(obj_id) == 1].mean(axis=0)
        assert np.linalg.norm(colour - background) > 20


def test_wrong_mask_size_is_reported() -> None:
    sample = _source().get_sample(0)
    with pytest.raises(ValueError, match=r"train_000000.*\(64, 96\).*\(64, 95\)"):
        InstanceSample(sample.image, sample.masks[:, :95], sample.objects, name=sample.name)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="split"):
        _source("test")
    with pytest.raises(ValueError, match="num_objects"):
        _source(num_objects=(3, 2))
    with pytest.raises(ValueError, match="could not place 60 shapes"):
        _source(num_objects=(60, 60)).get_sample(0)
    with pytest.raises(IndexError, match="out of range"):
        _source().get_sample(40)
    with pytest.raises(IndexError, match=r"SyntheticShapesSource: index 40 out of range \[0, 40\)"):
        _dataset()[40]


def test_bad_parts_are_named() -> None:
    sampler = MultiPointSampler(max_num_points=4)
    with pytest.raises(TypeError, match="source must be a SampleSource .* got dict"):
        InteractiveDataset({"_target_": "iseg.data.sbd.SBDSource"}, sampler)
    with pytest.raises(TypeError, match="sampler must be an InteractionSampler.* got str"):
        InteractiveDataset(_source(), "MultiPointSampler")
    with pytest.raises(TypeError, match="augmentation must be a callable pipeline.* got list"):
        InteractiveDataset(_source(), sampler, augmentation=[])


def test_items_have_the_training_layout() -> None:
    dataset = _dataset(augmentation=coco_lvis_train_augmentator(crop_size=(48, 80)), min_object_area=30)
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
    dataset = _dataset(augmentation=coco_lvis_train_augmentator(crop_size=(48, 80)), epoch_len=100)
    assert len(dataset) == 100
    dataset.seed(3)
    first = [dataset[0] for _ in range(3)]
    dataset.seed(3)
    again = [dataset[0] for _ in range(3)]
    assert all(all((a[k] == b[k]).all() for k in a) for a, b in zip(first, again))
    assert not (first[0]["images"] == first[1]["images"]).all(), "epoch_len draws a random sample per item"


class _Weighted(SyntheticShapesSource):
    """Shapes drawn by given per-sample probabilities, like SBD's hard-sample weights."""

    def __init__(self, probs: np.ndarray) -> None:
        super().__init__(num_samples=40, image_size=SIZE)
        self.probs = probs

    @property
    def sample_probs(self) -> np.ndarray:
        return self.probs


def test_source_sample_probs_pick_the_sample() -> None:
    probs = np.zeros(40)
    probs[7] = 1.0
    dataset = _dataset(source=_Weighted(probs))
    assert np.allclose(dataset[0]["images"].permute(1, 2, 0).numpy() * 255, dataset.source.get_sample(7).image)
    with pytest.raises(ValueError, match="_Weighted: sample probabilities must be 40 non-negative values"):
        _dataset(source=_Weighted(np.ones(3) / 3))


def test_min_object_area_prunes_targets_before_sampling() -> None:
    dataset = _dataset(min_object_area=10_000)  # larger than any object: every item is background only
    dataset.seed(0)
    item = dataset[0]
    assert (item["instances"] <= 0).all() and (item["points"][:24] == -1).all()


class _OneSample(SampleSource):
    """One hand-made sample, so the augmentation loop can be driven exactly."""

    def __init__(self) -> None:
        labels = np.zeros((32, 32), np.uint8)
        labels[8:24, 8:24] = 1
        self.sample = InstanceSample.from_label_map(np.zeros((32, 32, 3), np.uint8), labels)

    def __len__(self) -> int:
        return 1

    def get_sample(self, index: int, rng: np.random.Generator | None = None) -> InstanceSample:
        return self.sample


def _one_sample(**kwargs) -> InteractiveDataset:
    return InteractiveDataset(_OneSample(), MultiPointSampler(max_num_points=4), **kwargs)


class _Square(SampleSource):
    def __len__(self) -> int:
        return 1

    def get_sample(self, index: int, rng: np.random.Generator | None = None) -> InstanceSample:
        labels = np.zeros((32, 32), np.uint8)
        labels[8:24, 12:24] = 1
        return InstanceSample.from_label_map(np.zeros((32, 32, 3), np.uint8), labels)


class _ClickTheCentre:
    """An interaction sampler that is not a MultiPointSampler: the whole target, one click at its centre."""

    def __call__(self, sample: InstanceSample, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        gt = sample.get_object_mask(sample.root_objects[0])
        ys, xs = np.nonzero(gt == 1)
        return gt, np.array([[ys.mean(), xs.mean(), 0.0], [-1, -1, -1]], np.float32)


class _EraseFirstTries:
    """Augmentation that wipes every object on its first ``tries`` calls."""

    def __init__(self, tries: int) -> None:
        self.tries, self.calls = tries, 0

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> dict:
        self.calls += 1
        return {"image": image, "mask": np.zeros_like(mask) if self.calls <= self.tries else mask}


def test_a_source_a_sampler_and_an_augmentation_compose_without_subclassing() -> None:
    def flip(image: np.ndarray, mask: np.ndarray) -> dict:
        return {"image": np.ascontiguousarray(image[:, ::-1]), "mask": np.ascontiguousarray(mask[:, ::-1])}

    sampler = _ClickTheCentre()
    assert isinstance(sampler, InteractionSampler) and isinstance(MultiPointSampler(), InteractionSampler)
    dataset = InteractiveDataset(_Square(), sampler, augmentation=flip)
    item = dataset[0]
    assert len(dataset) == 1 and item["images"].shape == (3, 32, 32) and item["points"].shape == (2, 3)
    # the square of columns 12..23 is flipped to columns 8..19 before the sampler sees it
    assert item["instances"][0, 8:24, 8:20].eq(1).all() and item["instances"][0].sum() == 16 * 12
    assert item["points"][0].tolist() == [15.5, 13.5, 0.0]
    assert dataset.evaluation_view()[0][2] == "0#0", "the view reads the source, unaugmented"


def test_pruning_leaves_the_source_sample_alone() -> None:
    dataset = _one_sample(min_object_area=10_000)
    assert (dataset[0]["instances"] == 0).all() and len(dataset.source.sample) == 1


def test_augmentation_retries_until_an_object_survives() -> None:
    augmentation = _EraseFirstTries(tries=5)
    dataset = _one_sample(augmentation=augmentation, keep_background_prob=0.0)
    assert (dataset[0]["instances"] == 1).any() and augmentation.calls == 6
    augmentation = _EraseFirstTries(tries=5)
    dataset = _one_sample(augmentation=augmentation, keep_background_prob=-1.0)  # < 0: keep whatever comes
    assert (dataset[0]["instances"] == 0).all() and augmentation.calls == 1


def test_keep_background_prob_is_the_stop_rate() -> None:
    augmentation = _EraseFirstTries(tries=10**9)
    dataset = _one_sample(augmentation=augmentation, keep_background_prob=0.25, seed=0)
    for _ in range(400):
        dataset[0]
    assert 400 / augmentation.calls == pytest.approx(0.25, abs=0.04)


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
    assert len(everything) == sum(len(dataset.source.get_sample(i)) for i in range(len(dataset.source)))


def test_flat_variant_and_object_scale() -> None:
    flat = SyntheticShapesSource(num_samples=4, image_size=(96, 144), textured=False, object_scale=(0.3, 0.4))
    textured = SyntheticShapesSource(num_samples=4, image_size=(96, 144))
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
        SyntheticShapesSource(object_scale=(0.3, 0.7))
