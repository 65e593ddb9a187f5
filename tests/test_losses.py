"""NFL and sigmoid BCE against the RITM reference values (fixture nfl.npz, see its README)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iseg.losses import NormalizedFocalLoss, SigmoidBinaryCrossEntropyLoss
from tests.conftest import FIXTURES

NFL_FIXTURE = FIXTURES / "golden" / "losses" / "nfl.npz"


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(NFL_FIXTURE) as data:
        return dict(data)


@pytest.mark.parametrize(
    ("name", "loss_fn"),
    [("nfl", NormalizedFocalLoss(alpha=0.5, gamma=2)), ("bce", SigmoidBinaryCrossEntropyLoss())],
)
def test_loss_matches_reference(golden, name, loss_fn):
    logits = torch.from_numpy(golden["logits"]).requires_grad_(True)
    labels = torch.from_numpy(golden["labels"])
    per_sample = loss_fn(logits, labels)
    assert per_sample.shape == (4,)
    np.testing.assert_allclose(per_sample.detach().numpy(), golden[f"{name}_per_sample"], rtol=2e-6, atol=0)
    mean = per_sample.mean()
    np.testing.assert_allclose(mean.item(), golden[f"{name}_mean"], rtol=2e-6, atol=0)
    mean.backward()
    np.testing.assert_allclose(logits.grad.numpy(), golden[f"{name}_grad"], rtol=0, atol=1e-6)


def test_nfl_normaliser_is_detached(golden):
    """With the normaliser detached the gradient differs from the fully differentiated loss."""
    logits = torch.from_numpy(golden["logits"][:1])
    labels = torch.from_numpy(golden["labels"][:1])
    grads = []
    for detach in (True, False):
        x = logits.clone().requires_grad_(True)
        NormalizedFocalLoss(detach_normalizer=detach)(x, labels).sum().backward()
        grads.append(x.grad)
    assert not torch.allclose(grads[0], grads[1], atol=1e-5)
    np.testing.assert_allclose(grads[0].numpy(), golden["nfl_grad"][:1] * 4, rtol=0, atol=4e-6)


def test_ignored_pixels_do_not_matter():
    """Changing logits on ignored pixels changes neither loss; BCE still counts them in the mean."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 6, 7, generator=gen)
    labels = (torch.rand(2, 1, 6, 7, generator=gen) > 0.5).float()
    labels[:, :, :2] = -1
    other = logits.clone()
    other[:, :, :2] = 50.0
    for loss_fn in (NormalizedFocalLoss(), SigmoidBinaryCrossEntropyLoss()):
        torch.testing.assert_close(loss_fn(logits, labels), loss_fn(other, labels), rtol=0, atol=0)
    full = labels.clone()
    full[:, :, :2] = 0
    bce_masked = SigmoidBinaryCrossEntropyLoss()(logits, labels)
    per_pixel = torch.nn.functional.binary_cross_entropy_with_logits(logits, full, reduction="none")
    torch.testing.assert_close(bce_masked, (per_pixel[:, :, 2:].sum(dim=(1, 2, 3)) / 42), rtol=1e-6, atol=0)


def test_all_ignored_sample_gives_zero_nfl():
    logits = torch.randn(1, 1, 4, 4)
    labels = torch.full((1, 1, 4, 4), -1.0)
    assert NormalizedFocalLoss()(logits, labels).item() == 0.0


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="label shape"):
        NormalizedFocalLoss()(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))
    with pytest.raises(ValueError, match="alpha"):
        NormalizedFocalLoss(alpha=1.5)
