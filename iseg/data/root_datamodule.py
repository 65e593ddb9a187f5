"""A data module for datasets that live under one folder: ``python train.py data=sbd data.root=...``.

The data configs keep their per-split dataset settings (``data.train_dataset.*``,
``data.val_dataset.*``) as Hydra partials: the dataset (``InteractiveDataset``, ``_partial_: true``)
and, nested in it, its source (e.g. ``SBDSource``, ``_partial_: true``, split fixed in each). The one
path a user must give, ``data.root``, is passed here to both sources, which are built first (after
any preparation of the folder, such as the COCO+LVIS conversion), then the datasets around them.
This keeps configs mapping 1:1 to constructors while the dataset root is written once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iseg.data.datamodule import InteractiveDataModule
from iseg.data.interactive_dataset import InteractiveDataset
from iseg.data.source import SampleSource

DatasetFactory = Callable[..., InteractiveDataset]


def source_factory_of(factory: DatasetFactory, key: str = "dataset") -> Callable[..., SampleSource]:
    """The ``source`` argument of a dataset factory, checked to be a source factory (not a built source).

    ``factory`` is a ``functools.partial`` of ``InteractiveDataset`` (what Hydra builds from
    ``_partial_: true``) whose ``source`` keyword is itself a partial of a ``SampleSource`` that
    takes ``root=``; ``key`` names the config entry in errors.
    """
    is_partial = isinstance(factory, functools.partial)
    source_factory = factory.keywords.get("source") if is_partial else None
    if source_factory is None or isinstance(source_factory, SampleSource) or not callable(source_factory):
        given = f"a partial of {getattr(factory.func, '__qualname__', factory.func)}" if is_partial else type(factory).__name__
        raise TypeError(
            f"RootDataModule: data.{key} must be a dataset factory whose source takes root= (in the config, "
            f"`_partial_: true` on data.{key} and on data.{key}.source), got {given} with source "
            f"{type(source_factory).__name__}"
        )
    return source_factory


def build_under_root(factory: DatasetFactory, root: Path, key: str = "dataset") -> InteractiveDataset:
    """``factory(source=source_factory(root=root))``: the dataset around its source read from ``root``."""
    dataset = factory(source=source_factory_of(factory, key)(root=root))
    if not isinstance(dataset, InteractiveDataset):
        raise TypeError(f"RootDataModule: data.{key} built a {type(dataset).__name__}, not an InteractiveDataset")
    return dataset


class RootDataModule(InteractiveDataModule):
    """``InteractiveDataModule`` whose datasets' sources are built with the dataset root.

    Args:
        root: dataset folder, given to both sources as ``root=`` (``~`` is expanded).
        train_dataset: partial of ``InteractiveDataset`` for training whose ``source`` is a partial
            taking ``root=`` (e.g. of ``SBDSource`` with ``split: train``); see ``build_under_root``.
        val_dataset: the same for validation.
        **kwargs: the ``InteractiveDataModule`` arguments (batch_size, num_workers, ...).
    """

    def __init__(
        self,
        root: str | Path,
        train_dataset: DatasetFactory,
        val_dataset: DatasetFactory,
        **kwargs: Any,
    ) -> None:
        if root is None or str(root).strip() == "":
            raise ValueError("data.root is empty: give the dataset folder, e.g. `python train.py data=sbd data.root=/path`")
        self.root = Path(root).expanduser()
        for key, factory in (("train_dataset", train_dataset), ("val_dataset", val_dataset)):
            source_factory_of(factory, key)  # both config mistakes before any folder is read
        super().__init__(
            build_under_root(train_dataset, self.root, "train_dataset"),
            build_under_root(val_dataset, self.root, "val_dataset"),
            **kwargs,
        )
