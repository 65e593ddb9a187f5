"""Several training datasets as one, each counted a whole number of times (S2M's data mixture).

The reference trains S2M on ``ConcatDataset([static] * 2 + [lvis])`` with ``static`` itself a
concatenation in which the two small high-resolution sets appear five times: a repeated dataset
simply contributes more of the epoch's indices. ``DatasetMixture`` does the same with named
:class:`~iseg.data.interactive_dataset.InteractiveDataset` parts and a repeat count per name; the
parts keep their own sources, samplers and augmentations, and an item of the mixture is an item of
one part (so every part must give the same fields and crop size).

The interaction sampler is the method's (S2M's previous mask and scribbles), written once: parts
given as dataset factories (Hydra ``_partial_: true``) are built with ``sampler=`` the mixture's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from iseg.data.interactive_dataset import EvaluationView, InteractiveDataset
from iseg.interaction.sampler import InteractionSampler


class DatasetMixture(InteractiveDataset):
    """Concatenation of named training datasets with repeat factors.

    Args:
        datasets: name -> dataset, or a dataset factory that takes ``sampler=``; None entries are off
            (e.g. a set you do not have).
        sampler: the interaction sampler of the factories' datasets.
        repeats: name -> how many times the dataset's items count (default 1 each; 0 is off).
        epoch_len: items per epoch; > 0 draws every item uniformly from the concatenated, repeated
            index (so the mixture weights are the repeated sizes), otherwise an epoch is one pass.
        seed: seeds the mixture's index generator and each part (see ``seed``).
    """

    def __init__(
        self,
        datasets: Mapping[str, InteractiveDataset | Callable[..., InteractiveDataset] | None],
        sampler: InteractionSampler | None = None,
        repeats: Mapping[str, int] | None = None,
        epoch_len: int = -1,
        seed: int | None = None,
    ) -> None:
        # no InteractiveDataset.__init__: the parts hold the sources, samplers and augmentations
        parts = {}
        for name, dataset in datasets.items():
            if dataset is not None and not isinstance(dataset, InteractiveDataset):
                if not callable(dataset):
                    raise TypeError(f"DatasetMixture: datasets.{name} is a {type(dataset).__name__}, not a dataset")
                if sampler is None:
                    raise ValueError(f"DatasetMixture: datasets.{name} is a dataset factory; give the mixture a sampler")
                dataset = dataset(sampler=sampler)
                if not isinstance(dataset, InteractiveDataset):
                    raise TypeError(f"DatasetMixture: datasets.{name} built a {type(dataset).__name__}, not an InteractiveDataset")
            if dataset is not None:
                parts[str(name)] = dataset
        repeats = dict(repeats or {})
        unknown = sorted(set(repeats) - set(datasets))
        if unknown:
            raise KeyError(f"DatasetMixture: repeats names datasets {unknown} that are not in datasets {sorted(datasets)}")
        for name, count in repeats.items():
            if int(count) != count or count < 0:
                raise ValueError(f"DatasetMixture: repeats.{name} must be a whole number >= 0, got {count}")
        self.parts = [(name, dataset, int(repeats.get(name, 1))) for name, dataset in parts.items()]
        self.parts = [(name, dataset, count) for name, dataset, count in self.parts if count > 0]
        if not self.parts:
            raise ValueError("DatasetMixture: no dataset left (every entry is null or repeated 0 times)")
        sizes = np.array([len(dataset) * count for _, dataset, count in self.parts], np.int64)
        self.offsets = np.concatenate(([0], np.cumsum(sizes)))
        self.epoch_len = epoch_len
        self.seed(seed)

    @property
    def total(self) -> int:
        """Items of one pass over every part, repeats included."""
        return int(self.offsets[-1])

    def weights(self) -> dict[str, float]:
        """The share of the epoch's items each part gives."""
        return {name: float(self.offsets[i + 1] - self.offsets[i]) / self.total for i, (name, _, _) in enumerate(self.parts)}

    def seed(self, seed: int | None) -> None:
        """Seed the mixture's index generator and every part with streams spawned from ``seed``."""
        index_seq, *part_seqs = np.random.SeedSequence(seed).spawn(1 + len(self.parts))
        self.rng = np.random.default_rng(index_seq)
        for (_, dataset, _), sequence in zip(self.parts, part_seqs):
            dataset.seed(int(sequence.generate_state(1, np.uint64)[0]))

    def __len__(self) -> int:
        return self.epoch_len if self.epoch_len > 0 else self.total

    def compact_item(self, index: int) -> dict[str, torch.Tensor]:
        if self.epoch_len > 0:
            index = int(self.rng.integers(self.total))
        elif not 0 <= index < self.total:
            raise IndexError(f"DatasetMixture: index {index} out of range [0, {self.total})")
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        _, dataset, _ = self.parts[part]
        return dataset.compact_item(int(index - self.offsets[part]) % len(dataset))

    def evaluation_view(self, max_objects: int | None = None) -> EvaluationView:
        raise TypeError(
            "DatasetMixture is a training mixture: validate on one dataset (data.val_dataset an InteractiveDataset)"
        )
