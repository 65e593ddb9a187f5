"""A data module for datasets that live under one folder: ``python train.py data=sbd data.root=...``.

The data configs keep their per-split dataset settings (``data.train_dataset.*``,
``data.val_dataset.*``) as Hydra partials (``_partial_: true``, split fixed in each), and the one
path a user must give, ``data.root``, is passed to both here. This keeps configs mapping 1:1 to
constructors while the dataset root is written once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from iseg.data.datamodule import InteractiveDataModule
from iseg.data.interactive_dataset import InteractiveDataset


class RootDataModule(InteractiveDataModule):
    """``InteractiveDataModule`` whose datasets are built from factories that take the dataset root.

    Args:
        root: dataset folder, given to both factories as ``root=`` (``~`` is expanded).
        train_dataset: ``root -> InteractiveDataset`` for training (e.g. a Hydra partial of
            ``SBDDataset`` with ``split: train``).
        val_dataset: ``root -> InteractiveDataset`` for validation.
        **kwargs: the ``InteractiveDataModule`` arguments (batch_size, num_workers, ...).
    """

    def __init__(
        self,
        root: str | Path,
        train_dataset: Callable[..., InteractiveDataset],
        val_dataset: Callable[..., InteractiveDataset],
        **kwargs: Any,
    ) -> None:
        if root is None or str(root).strip() == "":
            raise ValueError("data.root is empty: give the dataset folder, e.g. `python train.py data=sbd data.root=/path`")
        self.root = Path(root).expanduser()
        datasets = {}
        for key, factory in (("train_dataset", train_dataset), ("val_dataset", val_dataset)):
            if not callable(factory):
                raise TypeError(
                    f"RootDataModule: {key} must be a dataset factory taking root= (a Hydra config with "
                    f"`_partial_: true`), got {type(factory).__name__}"
                )
            dataset = factory(root=self.root)
            if not isinstance(dataset, InteractiveDataset):
                raise TypeError(f"RootDataModule: {key} built a {type(dataset).__name__}, not an InteractiveDataset")
            datasets[key] = dataset
        super().__init__(datasets["train_dataset"], datasets["val_dataset"], **kwargs)
