"""Where training samples come from: the ``SampleSource`` interface of ``InteractiveDataset``.

A source is a fixed, indexable collection of un-augmented ``InstanceSample``s (SBD images, a
COCO+LVIS split, a folder, generated shapes). It knows its files and formats, nothing of
augmentation, targets or clicks: ``InteractiveDataset`` composes it with an interaction sampler and
an augmentation pipeline.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from iseg.data.sample import InstanceSample


class SampleSource(ABC):
    """Indexable un-augmented samples; subclasses implement ``__len__`` and ``get_sample``.

    Optional: ``sample_object_ids`` (override when objects can be listed without decoding the
    image) and ``sample_probs`` (per-sample draw probabilities, e.g. SBD's hard-sample weights).
    """

    @abstractmethod
    def __len__(self) -> int:
        """Number of distinct samples (images)."""

    @abstractmethod
    def get_sample(self, index: int, rng: np.random.Generator | None = None) -> InstanceSample:
        """Sample ``index`` (0 <= index < len), un-augmented; an ``IndexError`` outside that range.

        ``rng``: the dataset's generator, for the source's own random choices (COCO+LVIS draws
        whether stuff regions are targets); None makes none, so the sample is a pure function of
        ``index`` (the evaluation view). The caller may edit a copy, never the returned sample.
        """

    def sample_object_ids(self, index: int) -> list[int]:
        """Ids of the objects of sample ``index`` as ``get_sample(index)`` returns them, sorted."""
        return sorted(self.get_sample(index).objects)

    @property
    def sample_probs(self) -> np.ndarray | None:
        """Probability of drawing each sample for a training item, or None (index order / uniform)."""
        return None


def check_sample_probs(probs: Sequence[float] | np.ndarray | None, count: int, owner: str) -> np.ndarray | None:
    """``probs`` as float64 after checking it is ``count`` non-negative values summing to 1 (None passes)."""
    if probs is None:
        return None
    probs = np.asarray(probs, np.float64)
    if probs.shape != (count,) or (probs < 0).any() or not np.isclose(probs.sum(), 1.0):
        raise ValueError(
            f"{owner}: sample probabilities must be {count} non-negative values summing to 1, "
            f"got shape {probs.shape} and sum {probs.sum():.6g}"
        )
    return probs
