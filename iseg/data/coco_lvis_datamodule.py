"""COCO+LVIS data module: the authors' preprocessed annotation, or raw COCO 2017 + LVIS v1 converted once.

``python train.py data=cocolvis data.root=/path/to/cocolvis`` reads the released layout;
``... data.source=raw data.coco_root=/coco data.lvis_root=/lvis data.root=/scratch/cocolvis`` first
converts the raw annotations into ``data.root`` (reused on later runs, redone when an input
changes), then reads it the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iseg.data.coco_lvis_conversion import ensure_converted
from iseg.data.root_datamodule import DatasetFactory, RootDataModule, source_factory_of

SOURCES = ("preprocessed", "raw")


class CocoLvisDataModule(RootDataModule):
    """``RootDataModule`` over datasets of ``CocoLvisSource``s, with the optional raw-annotation conversion.

    The conversion runs before the sources are built, so they read what it wrote.

    Args:
        root: the COCO+LVIS folder (``train/``, ``val/``); with ``source='raw'`` the conversion writes it.
        train_dataset / val_dataset: dataset partials whose source (a ``CocoLvisSource`` partial)
            takes ``root=`` (see ``RootDataModule``).
        source: 'preprocessed' (the authors' annotation) or 'raw' (COCO 2017 + LVIS v1).
        coco_root / lvis_root: raw inputs, required with ``source='raw'``.
        coco_form: 'auto' (panoptic when present, else instances), 'panoptic' or 'instances'.
        splits: splits the conversion provides.
        conversion_workers: processes used by the conversion (0: the calling process).
        **kwargs: ``InteractiveDataModule`` arguments.
    """

    def __init__(
        self,
        root: str | Path,
        train_dataset: DatasetFactory,
        val_dataset: DatasetFactory,
        source: str = "preprocessed",
        coco_root: str | Path | None = None,
        lvis_root: str | Path | None = None,
        coco_form: str = "auto",
        splits: tuple[str, ...] | list[str] = ("train", "val"),
        conversion_workers: int = 0,
        **kwargs: Any,
    ) -> None:
        if source not in SOURCES:
            raise ValueError(f"data.source must be one of {SOURCES}, got {source!r}")
        if source == "raw":
            if not coco_root or not lvis_root:
                raise ValueError(
                    "data.source=raw needs data.coco_root (COCO 2017: <split>2017/ images and annotations/) and "
                    "data.lvis_root (lvis_v1_<split>.json); data.root is where the converted annotation is written"
                )
            if root is None or str(root).strip() == "":
                raise ValueError("data.root is empty: with data.source=raw it is the folder the conversion writes")
            source_factory_of(train_dataset, "train_dataset")  # config mistakes before a long conversion
            source_factory_of(val_dataset, "val_dataset")
            self.conversion_counts = ensure_converted(
                root, coco_root, lvis_root, tuple(splits), coco_form, conversion_workers
            )
        self.source = source
        super().__init__(root, train_dataset, val_dataset, **kwargs)
