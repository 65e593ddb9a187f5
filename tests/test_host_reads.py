"""The training step's accelerator path reads nothing back to the host (so a GPU is never waited on).

The accelerator code paths run here on CPU tensors (:func:`iseg.device_paths.accelerator_paths`),
under :class:`iseg.host_reads.HostReads`, which sees every value read as it reaches ATen.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from iseg.device_paths import accelerator_paths, require
from iseg.host_reads import HostReads
from iseg.methods.interactive import batch_iou
from iseg.training.progress import ProgressBar
from tests.conftest import compose_train_config


def test_the_counter_sees_value_reads_and_nothing_else():
    x = torch.arange(12.0).view(3, 4)
    with HostReads() as reads:
        y = torch.where(x > 3, x.cumsum(1), -x).argmax(1)  # stays on the device
        _ = (x * 2 + y.view(3, 1)).softmax(1)
    assert reads.reads == []
    with HostReads() as reads:
        x.sum().item()
        bool((x > 0).any())
        x[x > 5]
        x[x > 5] = 0.0
        torch.nonzero(x)
        torch.unique(x)
    assert [r.op for r in reads.reads] == [
        "_local_scalar_dense", "_local_scalar_dense", "index", "index_put_", "nonzero", "_unique2",
    ]
    assert all("test_host_reads.py" in r.where for r in reads.reads), reads.summary()
    assert "x _local_scalar_dense at" in reads.summary()


def _module_and_batch(tmp_path, model: str | None):
    cfg = compose_train_config(tmp_path, [f"model={model}"] if model else [])
    module = instantiate(cfg.model)
    generator = torch.Generator().manual_seed(0)
    first_click = [[10.0, 12.0, 100.0]] + [[-1.0, -1.0, -1.0]] * 7  # room for 3 simulated clicks
    batch = {
        "images": torch.rand(2, 3, 64, 96, generator=generator),
        "points": torch.tensor([first_click] * 2),
        "instances": (torch.rand(2, 1, 64, 96, generator=generator) > 0.5).float(),
    }
    return module, batch


def _steps(module, batch, steps: int) -> list[torch.Tensor]:
    """The losses of ``steps`` seeded training steps, not read (reading a GPU loss is a host read)."""
    module._rng = np.random.default_rng(3)  # 3 draws of 0..3 simulated clicks, the same on both paths
    torch.manual_seed(0)
    return [module.training_step(batch, step) for step in range(steps)]


def _losses(module, batch, steps: int) -> list[float]:
    return [loss.item() for loss in _steps(module, batch, steps)]


@pytest.mark.parametrize("model", [None, "fcfi_hrnet18s"], ids=["ritm_hrnet18s", "fcfi_hrnet18s"])
def test_training_steps_read_nothing_back_on_the_accelerator_path(tmp_path, model):
    module, batch = _module_and_batch(tmp_path, model)
    on_host = _losses(copy.deepcopy(module), batch, 3)  # a copy: the steps update BatchNorm statistics
    with accelerator_paths(), HostReads() as reads:
        losses = _steps(module, batch, 3)
    assert reads.reads == [], reads.summary()
    # the same simulated clicks and losses as the host path (OpenCV's transforms, immediate checks)
    assert [loss.item() for loss in losses] == pytest.approx(on_host, rel=1e-6)
    with HostReads() as reads:  # the host path reads where reading is free, e.g. the loss check
        _losses(module, batch, 1)
    assert reads.reads


def _nan_batch(batch):
    return {**batch, "images": torch.full_like(batch["images"], float("nan"))}


def test_a_non_finite_loss_on_the_accelerator_path_stops_the_next_step_naming_its_own(tmp_path):
    module, batch = _module_and_batch(tmp_path, None)
    clean = copy.deepcopy(module)  # a NaN forward leaves NaN BatchNorm statistics behind
    with accelerator_paths():
        module.training_step(_nan_batch(batch), 0)  # not read yet: the host does not wait for it
        with pytest.raises(FloatingPointError, match=r"non-finite train loss nan at epoch 0, global step 0 \(train/loss_instance="):
            module.training_step(batch, 1)
        clean.training_step(batch, 0)
        clean.on_save_checkpoint({})  # a finite loss: nothing to raise
        clean.training_step(_nan_batch(batch), 1)
        with pytest.raises(FloatingPointError, match="non-finite train loss"):
            clean.on_save_checkpoint({})  # before a checkpoint could keep the weights it updated


def test_batch_iou_is_the_mean_over_samples_with_a_union():
    gt = torch.zeros(3, 1, 4, 4)
    gt[0, 0, :2] = 1  # 8 pixels
    gt[1, 0, 0, 0] = -1  # ignored; sample 1 has an empty union
    probs = torch.zeros(3, 1, 4, 4)
    probs[0, 0, :1] = 0.9  # 4 of 8
    probs[1, 0, 0, 0] = 0.9  # only on the ignored pixel
    probs[2, 0, 3, 3] = 0.9  # a false positive: IoU 0
    with HostReads() as reads:
        iou = batch_iou(probs, gt)
    assert reads.reads == []
    assert iou.item() == pytest.approx((0.5 + 0.0) / 2)
    assert batch_iou(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)).item() == 1.0  # no union anywhere


def test_require_names_the_values_on_the_host_and_asserts_on_the_device():
    values = torch.tensor([1, -2, 3])
    require(values > -5, "out of range")
    with pytest.raises(ValueError, match=r"^values \[-2\] out of range$"):
        require(values > 0, "values out of range", lambda: f"values {values[values <= 0].tolist()} out of range")
    with accelerator_paths(), HostReads() as reads:
        require(values > -5, "values out of range")
        with pytest.raises(RuntimeError, match="values out of range"):  # CPU runs the device assert at once
            require(values > 0, "values out of range", lambda: "never built")
    assert reads.reads == [], reads.summary()


def test_progress_bar_reads_metrics_at_most_every_interval_during_training(monkeypatch):
    reads = []
    monkeypatch.setattr("lightning.pytorch.callbacks.RichProgressBar.get_metrics", lambda self, t, m: reads.append(1) or {"v_num": 0, "loss": len(reads)})
    monkeypatch.setattr("lightning.pytorch.callbacks.RichProgressBar.on_train_batch_end", lambda self, *a: self.get_metrics(None, None))
    bar = ProgressBar(metrics_interval=3600.0)
    for _ in range(5):
        bar.on_train_batch_end(None, None, None, None, 0)
    assert len(reads) == 1
    assert bar.get_metrics(None, None) == {"loss": 2}  # outside a train batch (epoch end, validation): fresh
    bar.metrics_interval = 0.0
    bar.on_train_batch_end(None, None, None, None, 0)
    assert len(reads) == 3
