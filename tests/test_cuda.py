"""What only a CUDA device can show: the GPU code paths against the CPU's results, and no host reads.

The rest of the suite runs the accelerator code paths on CPU tensors
(:func:`iseg.device_paths.accelerator_paths`); these tests run them on a real GPU: the torch
distance transforms and the device click rule bit for bit against OpenCV and the host rule, the
training steps of RITM and FCFI with no host read and the CPU's losses, the deferred non-finite loss
check and the device-side assert, the NoBRS golden's clicks through the predictor, and ``train.py``
end to end in bf16 with pinned batches. Without CUDA every test here skips;
``scripts/device/gpu_check.sh`` runs them on a GPU machine together with the GPU benchmark.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from iseg.host_reads import HostReads
from iseg.inference.predictor import Predictor
from iseg.interaction.device_clicks import sample_click_batch, training_click_candidates
from iseg.interaction.errors import padded_distance
from iseg.interaction.torch_distance import chamfer_distance, exact_distance
from tests.conftest import ROOT, TINY_OVERRIDES
from tests.test_host_reads import _losses, _module_and_batch, _nan_batch, _steps
from tests.test_predictor import _checkpoint, check_golden_protocol, golden, golden_views  # noqa: F401
from tests.test_torch_distance import SHAPES, host_candidates, random_masks, random_training_batch

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (scripts/device/gpu_check.sh runs these on a GPU machine)"
)

CUDA = torch.device("cuda")


@pytest.fixture
def full_float32():
    """Convolutions and matrix products in true float32 (cuDNN otherwise uses TF32 for convolutions)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("shape", SHAPES)
def test_distance_transforms_on_cuda_equal_opencv(shape):
    masks = random_masks(np.random.default_rng(7 + sum(shape)), 40, *shape)
    masks[0] = 1  # no background but the border
    on_device = torch.from_numpy(masks.astype(bool)).to(CUDA)
    exact, chamfer = exact_distance(on_device).cpu().numpy(), chamfer_distance(on_device).cpu().numpy()
    for mask, exact_value, chamfer_value in zip(masks, exact, chamfer):
        assert np.array_equal(exact_value, padded_distance(mask, exact=True))
        assert np.array_equal(chamfer_value, padded_distance(mask, exact=False))


@pytest.mark.parametrize("seed", [0, 1])
def test_device_click_rule_on_cuda_gives_the_host_rule_clicks(seed):
    probs, gt = random_training_batch(seed)
    want_cands, want_positive = host_candidates(probs, gt)
    candidates, positive = training_click_candidates(probs.to(CUDA), gt.to(CUDA))
    assert candidates.device.type == "cuda"
    assert [np.flatnonzero(c.cpu().numpy().ravel()).tolist() for c in candidates] == [c.tolist() for c in want_cands]
    assert positive.cpu().tolist() == want_positive
    draws = torch.tensor([0.5] * len(want_cands), dtype=torch.float64)
    on_cpu = sample_click_batch(probs, gt, draws).to_clicks()
    with HostReads() as reads:
        clicks = sample_click_batch(probs.to(CUDA), gt.to(CUDA), draws.to(CUDA))
    assert reads.on_accelerators() == [], reads.summary()
    assert clicks.to_clicks() == on_cpu


@pytest.mark.parametrize("model", [None, "fcfi_hrnet18s"], ids=["ritm_hrnet18s", "fcfi_hrnet18s"])
def test_training_steps_on_cuda_read_nothing_back_and_give_the_cpu_losses(tmp_path, model, full_float32):
    module, batch = _module_and_batch(tmp_path, model)
    on_host = _losses(copy.deepcopy(module), batch, 3)
    module = module.to(CUDA)
    batch = {key: value.to(CUDA) for key, value in batch.items()}
    with HostReads() as reads:
        losses = [loss.detach() for loss in _steps(module, batch, 3)]
    assert reads.on_accelerators() == [], reads.summary()
    assert [loss.item() for loss in losses] == pytest.approx(on_host, rel=1e-4)


def test_a_non_finite_loss_on_cuda_stops_the_next_step_and_any_checkpoint(tmp_path):
    module, batch = _module_and_batch(tmp_path, None)
    clean = copy.deepcopy(module).to(CUDA)
    module = module.to(CUDA)
    batch = {key: value.to(CUDA) for key, value in batch.items()}
    module.training_step(_nan_batch(batch), 0)
    with pytest.raises(FloatingPointError, match=r"non-finite train loss nan at epoch 0, global step 0"):
        module.training_step(batch, 1)
    clean.training_step(batch, 0)
    clean.on_save_checkpoint({})
    clean.training_step(_nan_batch(batch), 1)
    with pytest.raises(FloatingPointError, match="non-finite train loss"):
        clean.on_save_checkpoint({})


def test_a_failed_device_assert_stops_the_process_at_the_next_synchronisation():
    """``require`` on CUDA queues an assert; the host goes on until it synchronises, then fails.

    In a child process: a failed device-side assert leaves the CUDA context unusable.
    """
    script = textwrap.dedent(
        """
        import torch
        from iseg.device_paths import require
        values = torch.tensor([1, -2, 3], device="cuda")
        require(values > -5, "values out of range")
        torch.cuda.synchronize()
        print("passed", flush=True)
        require(values > 0, "values out of range")
        print("queued", flush=True)
        torch.cuda.synchronize()
        print("not reached", flush=True)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0, result.stdout
    assert result.stdout.split() == ["passed", "queued"], result.stdout + result.stderr
    assert "assert" in result.stderr.lower(), result.stderr[-2000:]


@pytest.mark.slow
def test_the_nobrs_goldens_clicks_on_cuda(golden, tmp_path: Path, full_float32) -> None:  # noqa: F811
    predictor = Predictor.from_checkpoint(str(_checkpoint("v1_override", tmp_path)), device="cuda", views=golden_views(golden), pred_thr=0.49)
    assert next(predictor.net.parameters()).device.type == "cuda"
    check_golden_protocol(predictor, golden, "v1_override")


@pytest.mark.slow
def test_train_py_on_cuda_in_bf16_with_pinned_batches_and_workers(tmp_path):
    overrides = [o for o in TINY_OVERRIDES if not o.startswith(("trainer.accelerator", "trainer.max_epochs", "data.num_workers", "data.persistent_workers"))]
    command = [
        sys.executable, "train.py", *overrides, f"hydra.run.dir={tmp_path}",
        "trainer.accelerator=gpu", "trainer.devices=1", "trainer.precision=bf16-mixed", "trainer.max_epochs=2",
        "data.num_workers=2", "data.pin_memory=auto", "logger=csv",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file(), sorted(p.name for p in tmp_path.rglob("*"))
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["epoch"] == 1 and all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())
