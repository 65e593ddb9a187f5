"""Training data that a resumed run replays exactly: items seeded per (epoch, index), loaders that resume mid-epoch.

- :class:`SeededItems`: the loader's view of an ``InteractiveDataset``. Every item is drawn from
  generators seeded by ``(stream key, epoch, index)``, so an item does not depend on which
  process made it, on the number of loader workers, or on the items drawn before it. The epoch
  lives in shared memory, so persistent workers see a new epoch without being restarted.
- :class:`ResumableDataLoader`: counts epochs, re-seeds its shuffle generator per epoch, and
  implements Lightning's ``state_dict`` / ``load_state_dict`` loader interface with
  ``{epoch, batches}``: a run restored from a mid-epoch checkpoint skips the batches it had
  already trained on (their indices only: nothing is loaded for them) and continues with the
  next batch of the same epoch; one restored at an epoch end starts the next epoch.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from iseg.data.interactive_dataset import InteractiveDataset


class SeededItems(Dataset):
    """Compact items of ``dataset`` (``InteractiveDataset.compact_item``), item ``i`` of epoch ``e``
    drawn with ``dataset.seed([*key, e, i])``.

    Args:
        dataset: the training or validation dataset.
        key: integers naming the stream (base seed, rank, loader).
    """

    def __init__(self, dataset: InteractiveDataset, key: Sequence[int]) -> None:
        self.dataset = dataset
        self.key = [int(k) for k in key]
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Items drawn from now on (in this process and in every worker) belong to ``epoch``."""
        self._epoch.fill_(int(epoch))

    def epoch_seed(self, epoch: int) -> int:
        """A 63-bit seed for the shuffle order of ``epoch``."""
        state = np.random.SeedSequence([*self.key, int(epoch)]).generate_state(2, np.uint32)
        return (int(state[0]) << 32 | int(state[1])) >> 1

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        self.dataset.seed([*self.key, self.epoch, int(index)])
        return self.dataset.compact_item(index)


class _SkippingBatches:
    """The loader's batch sampler, less the first ``skip`` batches of the coming epoch; sets the
    sampler's epoch (``DistributedSampler``) when iteration starts, after Lightning's own call."""

    def __init__(self, batch_sampler: Any, sampler: Any) -> None:
        self.batch_sampler = batch_sampler
        self.sampler = sampler
        self.skip = 0
        self.epoch = 0

    def __len__(self) -> int:  # the epoch's length (Lightning counts a resumed epoch's batches from the skipped ones)
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[Any]:
        set_epoch = getattr(self.sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.epoch)
        return itertools.islice(iter(self.batch_sampler), self.skip, None)


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` of :class:`SeededItems` whose epochs are numbered and resumable.

    Each ``iter()`` is one epoch: the items' epoch is set, the shuffle order re-seeded from it (a
    ``RandomSampler`` with a generator of its own, so the order does not depend on whether workers
    persist), and a sampler with ``set_epoch`` (``DistributedSampler``) told of it. ``generator``
    (required) is re-seeded too: torch draws the workers' base seeds from it, never from the global
    generator the training uses. ``state_dict()`` (saved
    by Lightning in every checkpoint) records the epoch and the batches yielded so far;
    ``load_state_dict`` makes the next ``iter()`` continue there.

    Args:
        first_epoch: number of the first epoch (a loader rebuilt by Lightning mid-run gets the trainer's epoch).
        count_epochs: False makes every iteration ``first_epoch`` again (validation: the same items each time).
        epoch_source: callable giving the number of the epoch about to run (the trainer's), or None
            when it does not know; the loader's own count is used then. A loaded state comes first.
        epoch_batches: callable giving the number of batches that make an epoch (the trainer's, with
            ``limit_train_batches``); ``len(loader)`` when None or when it gives None.
        Other arguments: as ``DataLoader``'s.
    """

    def __init__(
        self,
        dataset: SeededItems,
        *args: Any,
        first_epoch: int = 0,
        count_epochs: bool = True,
        epoch_source: Callable[[], int | None] | None = None,
        epoch_batches: Callable[[], int | float | None] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(dataset, SeededItems):
            raise TypeError(f"ResumableDataLoader needs SeededItems, got {type(dataset).__name__}")
        if kwargs.get("generator") is None:
            raise ValueError("ResumableDataLoader needs a generator (re-seeded every epoch)")
        if kwargs.get("shuffle") and kwargs.get("sampler") is None and kwargs.get("batch_sampler") is None:
            kwargs["shuffle"], kwargs["sampler"] = None, RandomSampler(dataset, generator=torch.Generator())
        super().__init__(dataset, *args, **kwargs)
        self.first_epoch = first_epoch
        self.count_epochs = count_epochs
        self.epoch_source = epoch_source
        self._loaded = False
        self.epoch_batches = epoch_batches
        self._next_epoch = first_epoch
        self._skip_next = 0
        self._epoch = first_epoch
        self._yielded = 0
        self._batches = _SkippingBatches(self.batch_sampler, self.sampler) if self.batch_sampler is not None else None

    @property
    def _index_sampler(self) -> Any:  # what torch's iterators draw indices from (torch >= 1.x private API)
        return self._batches if self._batches is not None else self.sampler

    @property
    def epoch(self) -> int:
        """The epoch of the current (or last) iteration."""
        return self._epoch

    def __iter__(self) -> Iterator[Any]:
        epoch, skip = self._next_epoch, self._skip_next
        told = self.epoch_source() if self.epoch_source is not None and self.count_epochs and not self._loaded else None
        if told is not None:
            epoch = int(told)
        self._loaded = False
        self._next_epoch, self._skip_next = epoch + int(self.count_epochs), 0
        self._epoch, self._yielded = epoch, skip
        self.dataset.set_epoch(epoch)
        self.generator.manual_seed(self.dataset.epoch_seed(epoch))
        if isinstance(self.sampler, RandomSampler) and self.sampler.generator is not None:
            self.sampler.generator.manual_seed(self.dataset.epoch_seed(epoch))
        if self._batches is not None:
            self._batches.epoch, self._batches.skip = epoch, skip
        elif skip:
            raise ValueError("resuming mid-epoch needs batched loading (batch_size set)")
        return self._count(super().__iter__())

    def _count(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self._yielded += 1
            yield batch

    def _batches_per_epoch(self) -> float:
        total = self.epoch_batches() if self.epoch_batches is not None else None
        return len(self.batch_sampler) if total is None else total

    def state_dict(self) -> dict[str, int]:
        """``{epoch, batches}``: the epoch in progress and the batches it has yielded."""
        return {"epoch": self._epoch, "batches": self._yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue after ``state``: the same epoch after its yielded batches, or the next epoch."""
        try:
            epoch, batches = int(state["epoch"]), int(state["batches"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"not a ResumableDataLoader state (expected {{epoch, batches}}): {state!r:.200}") from None
        if batches >= self._batches_per_epoch():
            self._next_epoch, self._skip_next = epoch + 1, 0
        else:
            self._next_epoch, self._skip_next = epoch, batches
        self._loaded = True
