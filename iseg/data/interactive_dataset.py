"""The click-training dataset (reference §2.1): a sample source + an interaction sampler + augmentation.

Training item: pick a sample of the source (uniformly at random when ``epoch_len`` > 0, or from
the source's ``sample_probs`` when it has them, as SBD's hard-sample weights), augment it until at
least one object survives (or, with prob ``keep_background_prob``, accept it empty), drop objects
smaller than ``min_object_area``, then let the interaction sampler choose the target and the
initial interactions.

Randomness: every draw comes from the dataset's own generators, set by ``seed``: one generator for
the index, the source's choices and the sampler, one shared stream for the augmentation pipeline.
The data module calls ``seed`` in the main process and, through ``seed_worker``, in every loader
worker with the worker's torch seed, so a run repeats for a given Lightning seed, rank and number
of workers.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from iseg.data.sample import InstanceSample
from iseg.data.source import SampleSource, check_sample_probs
from iseg.interaction.sampler import InteractionSampler


class InteractiveDataset(Dataset):
    """Map-style dataset yielding ``{'images', <the sampler's fields, e.g. 'points'>, 'instances'}`` items.

    Args:
        source: the samples (``SampleSource``: ``SBDSource``, ``CocoLvisSource``, ``FolderSource``,
            ``SyntheticShapesSource``, or your own).
        sampler: chooses the target and the initial interactions (``InteractionSampler``, e.g.
            ``MultiPointSampler``).
        augmentation: albumentations pipeline applied to image and masks, or None.
        min_object_area: objects with fewer pixels after augmentation are not targets.
        keep_background_prob: chance of accepting an augmentation that left no object
            (checked after every try; < 0 accepts always).
        epoch_len: items per epoch; > 0 makes every item a uniformly random sample (or one drawn
            by the source's ``sample_probs``); otherwise an epoch is one pass over the source.
        seed: seeds the generators (None: fresh OS entropy); see ``seed``.
    """

    def __init__(
        self,
        source: SampleSource,
        sampler: InteractionSampler,
        augmentation: Callable[..., dict[str, Any]] | None = None,
        min_object_area: int = 0,
        keep_background_prob: float = 0.0,
        epoch_len: int = -1,
        seed: int | None = None,
    ) -> None:
        if isinstance(source, functools.partial):
            name = getattr(source.func, "__qualname__", source.func)
            raise TypeError(
                f"InteractiveDataset: source is an unbuilt factory (a partial of {name}); a RootDataModule "
                "builds it with data.root when the dataset is a factory too (`_partial_: true` on the dataset)"
            )
        if not isinstance(source, SampleSource):
            raise TypeError(
                f"InteractiveDataset: source must be a SampleSource (e.g. iseg.data.sbd.SBDSource), "
                f"got {type(source).__name__}: {source!r:.200}"
            )
        if not isinstance(sampler, InteractionSampler):
            raise TypeError(
                f"InteractiveDataset: sampler must be an InteractionSampler, called as sampler(sample, rng) "
                f"(e.g. iseg.interaction.sampler.MultiPointSampler), got {type(sampler).__name__}"
            )
        if augmentation is not None and not callable(augmentation):
            raise TypeError(
                f"InteractiveDataset: augmentation must be a callable pipeline (image=, mask=) -> dict or None, "
                f"got {type(augmentation).__name__}"
            )
        if len(source) < 1:
            raise ValueError(f"InteractiveDataset: the source {type(source).__name__} has no samples")
        self.source = source
        self.sampler = sampler
        self.augmentation = augmentation
        self.min_object_area = min_object_area
        self.keep_background_prob = keep_background_prob
        self.epoch_len = epoch_len
        self.sample_probs = check_sample_probs(source.sample_probs, len(source), type(source).__name__)
        self.seed(seed)

    # ------------------------------------------------------------------ randomness
    def seed(self, seed: int | None) -> None:
        """Reset the index/source/sampler generator and the augmentation pipeline's generators from one seed."""
        index_seq, numpy_seq, python_seq = np.random.SeedSequence(seed).spawn(3)
        self.rng = np.random.default_rng(index_seq)
        if self.augmentation is not None and hasattr(self.augmentation, "set_random_state"):
            # one shared stream for the whole pipeline: per-transform copies of one seed would correlate
            self.augmentation.set_random_state(
                np.random.default_rng(numpy_seq), random.Random(int(python_seq.generate_state(1)[0]))
            )

    # ------------------------------------------------------------------ items
    def __len__(self) -> int:
        return self.epoch_len if self.epoch_len > 0 else len(self.source)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return expand_item(self.compact_item(index))

    def compact_item(self, index: int) -> dict[str, torch.Tensor]:
        """The item with a uint8 image (3, H, W) and int8 instances (1, H, W); ``expand_item`` gives ``self[index]``.

        A quarter of the bytes of the float item: loader workers send these through shared
        memory (whose page faults, not the copy, dominate the transfer) and the main process
        expands whole batches.
        """
        num_samples = len(self.source)
        if self.sample_probs is not None:
            index = int(self.rng.choice(num_samples, p=self.sample_probs))
        elif self.epoch_len > 0:
            index = int(self.rng.integers(num_samples))
        elif not 0 <= index < num_samples:
            raise IndexError(f"{type(self.source).__name__}: index {index} out of range [0, {num_samples})")
        sample = self.augment_sample(self.source.get_sample(index, self.rng))
        sample.remove_small_objects(self.min_object_area)
        gt, interactions = self.sampler(sample, self.rng)
        fields = dict(interactions) if isinstance(interactions, Mapping) else {"points": interactions}
        image = fields.pop("image", sample.image)
        if gt.shape != image.shape[:2]:
            raise ValueError(
                f"{type(self.sampler).__name__}: gt of shape {gt.shape} for an image of shape {image.shape[:2]}"
            )
        reserved = sorted({"images", "instances"} & fields.keys())
        if reserved:
            raise ValueError(f"{type(self.sampler).__name__}: interaction fields may not be named {reserved}")
        return {
            "images": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            **{name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in fields.items()},
            "instances": torch.from_numpy(gt[None].astype(np.int8)),
        }

    def augment_sample(self, sample: InstanceSample) -> InstanceSample:
        """Augment until an object survives or the empty result is kept (with keep_background_prob)."""
        if self.augmentation is None:
            return sample.copy()  # pruning must not edit a sample the source may cache
        while True:
            augmented = sample.augment(self.augmentation)
            keep_empty = self.keep_background_prob < 0.0 or self.rng.random() < self.keep_background_prob
            # a sample without objects cannot gain any: retrying would loop forever
            if len(augmented) > 0 or keep_empty or len(sample) == 0:
                return augmented

    def evaluation_view(self, max_objects: int | None = None) -> EvaluationView:
        """The protocol's view of the source: one (image, gt, name) item per object, no augmentation."""
        return EvaluationView(self.source, max_objects)


class EvaluationView(Dataset):
    """(image uint8 H×W×3, gt int8 H×W with -1 on ignore, name) for each object of a source, in order.

    Objects are all objects of each sample's tree (roots and parts), in id order; the first
    ``max_objects`` of them are kept (all when None). Samples are read with no random choice
    (``get_sample(index)``) and regenerated on access, so the view holds only the (sample, object)
    index.
    """

    def __init__(self, source: SampleSource, max_objects: int | None = None) -> None:
        if max_objects is not None and max_objects < 1:
            raise ValueError(f"max_objects must be >= 1 or None, got {max_objects}")
        self.source = source
        self.index: list[tuple[int, int]] = []
        for sample_index in range(len(source)):
            if max_objects is not None and len(self.index) >= max_objects:
                break
            self.index.extend((sample_index, obj_id) for obj_id in source.sample_object_ids(sample_index))
        if max_objects is not None:
            self.index = self.index[:max_objects]
        if not self.index:
            raise ValueError(f"{type(source).__name__} has no objects to evaluate")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> tuple[np.ndarray, np.ndarray, str]:
        if not -len(self) <= item < len(self):
            raise IndexError(f"evaluation item {item} out of range [0, {len(self)})")
        sample_index, obj_id = self.index[item]
        sample = self.source.get_sample(sample_index)
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
