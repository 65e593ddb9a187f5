"""Lightning data module: train/val loaders of click-training items and the protocol's evaluation view.

``batch_size`` is the global batch of the paper recipes (e.g. 32 on one GPU, 28 on two); each rank
loads ``batch_size / world_size``, like the reference's DataParallel split. Loader randomness is
derived from (seed, rank, loader, epoch, index): every item is drawn from generators seeded by these (:class:`~iseg.data.resumable.SeededItems`, so an item does not depend on the number
of workers), the shuffle order from (seed, rank, loader, epoch). The training loader is resumable
(:class:`~iseg.data.resumable.ResumableDataLoader`): a run restored from a checkpoint continues
with the epoch and batch it had reached, with the same items. Validation items are the same at
every validation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
import lightning as L
import torch
from torch.utils.data import DataLoader

from iseg.data.interactive_dataset import EvaluationView, InteractiveDataset, expand_item
from iseg.data.resumable import ResumableDataLoader, SeededItems

_STREAMS = {"train": 0, "val": 1}


class ExpandingDataLoader(ResumableDataLoader):
    """Loader of compact items (``SeededItems``): workers collate uint8 images; ``expand`` turns each batch into floats.

    Expanded batches are the float batches of ``InteractiveDataset`` items (``expand_item``), bit
    for bit; moving a quarter of the bytes through shared memory is what lets 2 workers keep up
    (see scripts/benchmark_data_pipeline.py). Without ``expand`` the compact batches are yielded,
    for expansion after the copy to the device.
    """

    def __init__(self, *args, expand: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.expand = expand

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for batch in super().__iter__():
            yield expand_item(batch) if self.expand else batch


class InteractiveDataModule(L.LightningDataModule):
    """Loaders for click-based training.

    Args:
        train_dataset: training ``InteractiveDataset``.
        val_dataset: validation dataset (loss/IoU batches and the protocol view).
        batch_size: global training batch; must be divisible by the world size.
        val_batch_size: global validation batch (default: batch_size).
        num_workers: loader workers per rank.
        pin_memory: pin batches (page-locked host memory), so that their copy to a GPU runs
            asynchronously: from pageable memory the copy may wait for the GPU's queued work.
            ``"auto"``: when the trainer runs on CUDA (without a trainer: when CUDA is available).
        persistent_workers: keep workers alive between epochs (only with num_workers > 0).
        seed: base seed; None uses Lightning's ``seed_everything`` seed (PL_GLOBAL_SEED), else 0.

    Under a Trainer the loaders yield compact batches (uint8 images, int8 instances: a quarter of
    the bytes through the host-to-device copy) and :meth:`on_after_batch_transfer` expands them on
    the training device; iterated directly, they yield the expanded float batches.
    """

    def __init__(
        self,
        train_dataset: InteractiveDataset,
        val_dataset: InteractiveDataset,
        batch_size: int = 32,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool | str = "auto",
        persistent_workers: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1 or (val_batch_size is not None and val_batch_size < 1):
            raise ValueError(f"batch sizes must be >= 1, got batch_size={batch_size}, val_batch_size={val_batch_size}")
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size if val_batch_size is not None else batch_size
        self.num_workers = num_workers
        if pin_memory not in (True, False, "auto"):
            raise ValueError(f"pin_memory={pin_memory!r}: expected true, false or auto")
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.seed = seed
        self._protocol_views: dict[int | None, EvaluationView] = {}

    # ------------------------------------------------------------------ distribution
    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    @property
    def rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    def per_device(self, global_batch: int, name: str = "batch_size") -> int:
        """Per-rank share of a global batch; an error when it does not split evenly."""
        if global_batch % self.world_size:
            raise ValueError(
                f"{name}={global_batch} is not divisible by the world size {self.world_size}; "
                "choose a global batch that is a multiple of the number of devices"
            )
        return global_batch // self.world_size

    def setup(self, stage: str | None = None) -> None:
        self.per_device(self.batch_size)
        self.per_device(self.val_batch_size, "val_batch_size")

    def base_seed(self) -> int:
        if self.seed is not None:
            return int(self.seed)
        return int(os.environ.get("PL_GLOBAL_SEED", 0))

    def stream_key(self, stream: str) -> list[int]:
        """The integers that name a loader's random stream: base seed, rank, loader."""
        return [self.base_seed(), self.rank, _STREAMS[stream]]

    def _epoch_batches(self) -> int | float | None:
        """Batches in a training epoch as the trainer runs it (``limit_train_batches`` included)."""
        trainer = self.trainer
        batches = getattr(trainer, "num_training_batches", None) if trainer is not None else None
        return batches if isinstance(batches, (int, float)) and batches > 0 else None

    def _fit_epoch(self) -> int | None:
        """The epoch the trainer's fit loop is about to run (None outside ``fit``), also right after a restore."""
        fit_loop = getattr(self.trainer, "fit_loop", None)
        if fit_loop is None or not getattr(self.trainer, "training", False):
            return None
        return int(fit_loop.epoch_progress.current.processed)

    # ------------------------------------------------------------------ loaders
    def pins_memory(self) -> bool:
        """Whether the loaders pin their batches (``pin_memory``, with ``"auto"`` resolved)."""
        if self.pin_memory != "auto":
            return bool(self.pin_memory)
        strategy = getattr(self.trainer, "strategy", None) if self.trainer is not None else None
        if strategy is not None:
            return strategy.root_device.type == "cuda"
        return torch.cuda.is_available()

    def _loader(self, dataset: InteractiveDataset, stream: str, batch_size: int) -> DataLoader:
        items = SeededItems(dataset, self.stream_key(stream))
        train = stream == "train"
        # overfitting a few batches (trainer.overfit_batches, debug=overfit) means the same items every epoch
        overfit = bool(getattr(self.trainer, "overfit_batches", 0))
        return ExpandingDataLoader(
            items,
            expand=not isinstance(self.trainer, L.Trainer),
            batch_size=self.per_device(batch_size),
            shuffle=stream == "train",
            drop_last=stream == "train",
            num_workers=self.num_workers,
            pin_memory=self.pins_memory(),
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            generator=torch.Generator(),
            # training: numbered epochs (the trainer's epoch when Lightning rebuilds the loader);
            # validation: the same items every time (epoch 0)
            first_epoch=int(getattr(self.trainer, "current_epoch", 0) or 0) if train else 0,
            count_epochs=train and not overfit,
            epoch_source=self._fit_epoch if train else None,
            epoch_batches=self._epoch_batches if train else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, "train", self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, "val", self.val_batch_size)

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict[str, torch.Tensor]:
        """Expand a compact batch where it now lives (the GPU), not on the host; float batches pass."""
        return expand_item(batch)

    def protocol_samples(self, num_objects: int | None = None) -> EvaluationView:
        """(image, gt, name) items of the first ``num_objects`` validation objects (all when None)."""
        if num_objects not in self._protocol_views:
            self._protocol_views[num_objects] = self.val_dataset.evaluation_view(num_objects)
        return self._protocol_views[num_objects]
