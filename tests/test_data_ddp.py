"""The SBD data module under DDP (2 CPU processes, gloo): every rank loads its own items, repeatably.

The test launches this file as a script (``python -m tests.test_data_ddp ROOT WEIGHTS OUT``):
Lightning's DDP launcher starts the second rank with the same command. A probe LightningModule
records which SBD image (found by its pixels) and which clicks every rank's training and
validation items carry. Training uses hard-sample weights (each rank draws from its own seeded
stream); validation has no ``epoch_len`` (the distributed sampler gives each rank a shard).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _fingerprint(tensor) -> str:
    return hashlib.sha1(tensor.contiguous().numpy().tobytes()).hexdigest()[:12]


def _probe(root: Path, weights: Path, out: Path) -> None:
    import lightning as L
    import numpy as np
    import torch

    from iseg.data.interactive_dataset import InteractiveDataset
    from iseg.data.root_datamodule import RootDataModule
    from iseg.data.sbd import SBDSource
    from iseg.interaction.sampler import MultiPointSampler

    torch.set_num_threads(1)
    L.seed_everything(7, workers=True, verbose=False)
    sampler = MultiPointSampler(max_num_points=24, prob_gamma=0.8, merge_objects_prob=0.15)
    module = RootDataModule(
        str(root),
        functools.partial(InteractiveDataset, source=functools.partial(SBDSource, split="train", samples_weights=weights),
                          sampler=sampler),
        functools.partial(InteractiveDataset, source=functools.partial(SBDSource, split="val"), sampler=sampler),
        batch_size=2,
    )
    names = {}
    for source in (module.train_dataset.source, module.val_dataset.source):
        for i, name in enumerate(source.names):
            image = source.get_sample(i).image.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
            names[_fingerprint(torch.from_numpy(image))] = name

    class Probe(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.seen: dict[str, list] = {"train": [], "val": []}

        def _record(self, stage: str, batch: dict) -> None:
            for image, points in zip(batch["images"], batch["points"]):
                self.seen[stage].append([names[_fingerprint(image)], _fingerprint(points)])

        def training_step(self, batch, batch_idx):
            self._record("train", batch)
            return (self.weight * batch["images"].mean()).sum()

        def validation_step(self, batch, batch_idx):
            self._record("val", batch)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def on_fit_end(self) -> None:
            record = {"world_size": self.trainer.world_size, **self.seen}
            (out / f"rank{self.global_rank}.json").write_text(json.dumps(record))

    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )
    trainer.fit(Probe(), datamodule=module)


def _launch(root: Path, weights: Path, out: Path) -> list[dict]:
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "tests.test_data_ddp", str(root), str(weights), str(out)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_ranks_load_distinct_repeatable_items(tmp_path):
    from tests.sbd_files import write_sbd_dataset

    names = write_sbd_dataset(tmp_path / "sbd", num_train=8, num_val=4, image_size=(32, 48))
    weights = tmp_path / "weights.pkl"
    with open(weights, "wb") as f:
        pickle.dump([(i, n, s) for i, (n, s) in enumerate(zip(names["train"], [0.2, 0.9, 0.5, 0.7] * 2))], f)

    first = _launch(tmp_path / "sbd", weights, tmp_path / "one")
    again = _launch(tmp_path / "sbd", weights, tmp_path / "two")
    assert first == again, "the same seed repeats every rank's stream"
    rank0, rank1 = first
    assert rank0["world_size"] == 2
    # training: 8 items per epoch split over 2 ranks, global batch 2 -> 4 steps of 1 item each
    assert len(rank0["train"]) == len(rank1["train"]) == 4
    assert rank0["train"] != rank1["train"], "ranks draw different training items"
    assert {name for name, _ in rank0["train"] + rank1["train"]} <= set(names["train"])
    # validation: the distributed sampler shards the 4 images, 2 per rank
    val0, val1 = ({name for name, _ in r["val"]} for r in (rank0, rank1))
    assert len(val0) == len(val1) == 2 and not val0 & val1 and val0 | val1 == set(names["val"])


if __name__ == "__main__":
    _probe(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
