"""Base dataset of click-based training (reference §2.1) and its evaluation view.

Training item: pick a sample (uniformly at random when ``epoch_len`` > 0, or from per-sample
probabilities when a subclass sets them, as SBD does), augment it until at least one object
survives (or, with prob ``keep_background_prob``, accept it empty), drop objects smaller than
``min_object_area``, then let the points sampler choose the target and the initial clicks.

Randomness: every draw comes from the dataset's own generators, set by ``seed``. The data module
calls ``seed`` in the main process and, through ``seed_worker``, in every loader worker with the
worker's torch seed, so a run repeats for a given Lightning seed, rank and number of workers.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from iseg.data.sample import InstanceSample
from iseg.interaction.sampler import MultiPointSampler


class InteractiveDataset(Dataset, ABC):
    """Map-style dataset yielding ``{'images', 'points', 'instances'}`` training items.

    Args:
        points_sampler: chooses the target and the initial clicks (``MultiPointSampler``).
        augmentator: albumentations pipeline applied to image and masks, or None.
        min_object_area: objects with fewer pixels after augmentation are not targets.
        keep_background_prob: chance of accepting an augmentation that left no object
            (checked after every try; < 0 accepts always).
        epoch_len: items per epoch; > 0 makes every item a uniformly random sample.
        seed: seeds the generators (None: fresh OS entropy); see ``seed``.
    """

    def __init__(
        self,
        points_sampler: MultiPointSampler,
        augmentator: Callable[..., dict[str, Any]] | None = None,
        min_object_area: int = 0,
        keep_background_prob: float = 0.0,
        epoch_len: int = -1,
        seed: int | None = None,
    ) -> None:
        self.points_sampler = points_sampler
        self.augmentator = augmentator
        self.min_object_area = min_object_area
        self.keep_background_prob = keep_background_prob
        self.epoch_len = epoch_len
        self._index_probs: np.ndarray | None = None
        self.seed(seed)

    # ------------------------------------------------------------------ subclass API
    @property
    @abstractmethod
    def num_samples(self) -> int:
        """Number of distinct samples (images) in the dataset."""

    @abstractmethod
    def get_sample(self, index: int) -> InstanceSample:
        """The un-augmented sample ``index`` (0 <= index < num_samples)."""

    def sample_object_ids(self, index: int) -> list[int]:
        """Objects of sample ``index`` the evaluation view visits; override when a cheaper index exists."""
        return sorted(self.get_sample(index).objects)

    def set_index_probs(self, probs: Sequence[float] | np.ndarray | None) -> None:
        """Draw every item's sample from these per-sample probabilities (SBD's hard-sample weights)."""
        if probs is None:
            self._index_probs = None
            return
        probs = np.asarray(probs, np.float64)
        if probs.shape != (self.num_samples,) or (probs < 0).any() or not np.isclose(probs.sum(), 1.0):
            raise ValueError(
                f"{type(self).__name__}: index probabilities must be {self.num_samples} non-negative values "
                f"summing to 1, got shape {probs.shape} and sum {probs.sum():.6g}"
            )
        self._index_probs = probs

    # ------------------------------------------------------------------ randomness
    def seed(self, seed: int | None) -> None:
        """Reset the index/click generator and the augmentation pipeline's generators from one seed."""
        index_seq, numpy_seq, python_seq = np.random.SeedSequence(seed).spawn(3)
        self.rng = np.random.default_rng(index_seq)
        if self.augmentator is not None and hasattr(self.augmentator, "set_random_state"):
            # one shared stream for the whole pipeline: per-transform copies of one seed would correlate
            self.augmentator.set_random_state(
                np.random.default_rng(numpy_seq), random.Random(int(python_seq.generate_state(1)[0]))
            )

    # ------------------------------------------------------------------ items
    def __len__(self) -> int:
        return self.epoch_len if self.epoch_len > 0 else self.num_samples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return expand_item(self.compact_item(index))

    def compact_item(self, index: int) -> dict[str, torch.Tensor]:
        """The item with a uint8 image (3, H, W) and int8 instances (1, H, W); ``expand_item`` gives ``self[index]``.

        A quarter of the bytes of the float item: loader workers send these through shared
        memory (whose page faults, not the copy, dominate the transfer) and the main process
        expands whole batches.
        """
        if self._index_probs is not None:
            index = int(self.rng.choice(self.num_samples, p=self._index_probs))
        elif self.epoch_len > 0:
            index = int(self.rng.integers(self.num_samples))
        elif not 0 <= index < self.num_samples:
            raise IndexError(f"{type(self).__name__}: index {index} out of range [0, {self.num_samples})")
        sample = self.augment_sample(self.get_sample(index))
        sample.remove_small_objects(self.min_object_area)
        gt, points = self.points_sampler(sample, self.rng)
        return {
            "images": torch.from_numpy(np.ascontiguousarray(sample.image.transpose(2, 0, 1))),
            "points": torch.from_numpy(points),
            "instances": torch.from_numpy(gt[None].astype(np.int8)),
        }

    def augment_sample(self, sample: InstanceSample) -> InstanceSample:
        """Augment until an object survives or the empty result is kept (with keep_background_prob)."""
        if self.augmentator is None:
            return sample.copy()  # pruning must not edit a sample the subclass may cache
        while True:
            augmented = sample.augment(self.augmentator)
            keep_empty = self.keep_background_prob < 0.0 or self.rng.random() < self.keep_background_prob
            # a sample without objects cannot gain any: retrying would loop forever
            if len(augmented) > 0 or keep_empty or len(sample) == 0:
                return augmented

    def evaluation_view(self, max_objects: int | None = None) -> EvaluationView:
        """The protocol's view: one (image, gt, name) item per object, no augmentation."""
        return EvaluationView(self, max_objects)


class EvaluationView(Dataset):
    """(image uint8 H×W×3, gt int8 H×W with -1 on ignore, name) for each object, in dataset order.

    Objects are all objects of each sample's tree (roots and parts), in id order; the first
    ``max_objects`` of them are kept (all when None). Samples are regenerated on access, so the
    view holds only the (sample, object) index.
    """

    def __init__(self, dataset: InteractiveDataset, max_objects: int | None = None) -> None:
        if max_objects is not None and max_objects < 1:
            raise ValueError(f"max_objects must be >= 1 or None, got {max_objects}")
        self.dataset = dataset
        self.index: list[tuple[int, int]] = []
        for sample_index in range(dataset.num_samples):
            if max_objects is not None and len(self.index) >= max_objects:
                break
            self.index.extend((sample_index, obj_id) for obj_id in dataset.sample_object_ids(sample_index))
        if max_objects is not None:
            self.index = self.index[:max_objects]
        if not self.index:
            raise ValueError(f"{type(dataset).__name__} has no objects to evaluate")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> tuple[np.ndarray, np.ndarray, str]:
        if not -len(self) <= item < len(self):
            raise IndexError(f"evaluation item {item} out of range [0, {len(self)})")
        sample_index, obj_id = self.index[item]
        sample = self.dataset.get_sample(sample_index)
        gt = sample.get_object_mask(obj_id).astype(np.int8)
        return sample.image, gt, f"{sample.name or sample_index}#{obj_id}"


def expand_item(item: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A compact item or batch as the training step takes it: float32 images in [0, 1], float32 instances.

    ``image / 255`` in float32, exactly as the reference's ``ToTensor``; float tensors pass unchanged.
    """
    out = dict(item)
    if out["images"].dtype == torch.uint8:
        out["images"] = out["images"].to(torch.float32).div_(255.0)
    if out["instances"].dtype == torch.int8:
        out["instances"] = out["instances"].to(torch.float32)
    return out


class CompactItems(Dataset):
    """What a loader reads from an ``InteractiveDataset``: its ``compact_item``s (expand batches after)."""

    def __init__(self, dataset: InteractiveDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.dataset.compact_item(index)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed the worker's dataset copy from its torch seed.

    torch derives that seed from the loader's generator, the epoch's iterator and the worker id,
    so streams differ across workers and epochs yet repeat for a seeded generator. OpenCV's thread
    count is deliberately left alone: ``cv2.setNumThreads`` in a forked worker can hang forever
    (it destroys the pool's condition variables inherited mid-wait from the parent).
    """
    info = get_worker_info()
    dataset = info.dataset if info is not None else None
    if isinstance(dataset, CompactItems):
        dataset = dataset.dataset
    if isinstance(dataset, InteractiveDataset):
        dataset.seed(info.seed)
