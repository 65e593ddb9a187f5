"""S2M soft aggregation and bootstrapped CE against the reference goldens (s2m_aggregate.npz,
s2m_bootstrapped_ce.npz), and the loss as a training loss term."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from iseg.inference.aggregation import aggregate, aggregate_logits, single_object_logit
from iseg.models.s2m.loss import BootstrappedCE, S2MLossTerm, s2m_class_target

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden"


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


@pytest.mark.parametrize("k", [2, 3])
def test_aggregation_matches_reference(k: int) -> None:
    ref = _load(GOLDEN / "protocol" / "s2m_aggregate.npz")
    prob = torch.from_numpy(ref[f"k{k}_prob"])
    np.testing.assert_allclose(aggregate_logits(prob).numpy(), ref[f"k{k}_logits"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(aggregate(prob, keep_bg=True).numpy(), ref[f"k{k}_out_keep_bg_true"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(aggregate(prob, keep_bg=False).numpy(), ref[f"k{k}_out_keep_bg_false"], atol=1e-6, rtol=0)


def test_aggregation_sums_to_one_and_hard_is_an_argmax() -> None:
    prob = torch.rand(2, 4, 9, 11, generator=torch.Generator().manual_seed(0))
    soft = aggregate(prob)
    torch.testing.assert_close(soft.sum(1), torch.ones(2, 9, 11))
    hard = aggregate(prob, hard=True)
    assert torch.equal(hard.argmax(1), soft.argmax(1))
    assert bool((hard.max(1).values >= soft.max(1).values - 1e-6).all())  # sharper everywhere
    assert float(hard.max(1).values.median()) > 0.999


def test_single_object_logit_is_the_aggregate() -> None:
    z = torch.linspace(-30, 30, 121).view(1, 1, 11, 11)
    fg = aggregate(torch.sigmoid(z))[:, 1:]
    torch.testing.assert_close(torch.sigmoid(single_object_logit(z)), fg, atol=1e-6, rtol=0)


@pytest.mark.parametrize("case", ["generic", "s2m"])
def test_bootstrapped_ce_matches_reference(case: str) -> None:
    ref = _load(GOLDEN / "losses" / "s2m_bootstrapped_ce.npz")
    loss = BootstrappedCE(start_warm=10000, end_warm=30000, top_p=0.15)
    if case == "generic":
        logits, target = torch.from_numpy(ref["generic_logits"]), torch.from_numpy(ref["generic_target"])
    else:
        logits = aggregate_logits(torch.sigmoid(torch.from_numpy(ref["s2m_z"])))
        np.testing.assert_allclose(logits.numpy(), ref["s2m_agg_logits"], atol=1e-5, rtol=0)
        target = s2m_class_target(torch.from_numpy(ref["s2m_gt"]))
        assert torch.equal(target, torch.from_numpy(ref["s2m_cls_gt"]))
    for it, expected, expected_p in zip(ref["its"], ref[f"{case}_loss"], ref[f"{case}_p"]):
        value, p = loss(logits, target, int(it))
        assert p == pytest.approx(float(expected_p), rel=1e-12), f"p at it={it}"
        assert float(value) == pytest.approx(float(expected), rel=1e-6), f"loss at it={it}"


def test_loss_term_uses_the_training_step_and_skips_ignore_pixels() -> None:
    ref = _load(GOLDEN / "losses" / "s2m_bootstrapped_ce.npz")
    term = S2MLossTerm()
    outputs = {"object_logits": torch.from_numpy(ref["s2m_z"])}
    gt = torch.from_numpy(ref["s2m_gt"])
    assert float(term(outputs, gt, step=0)) == pytest.approx(float(ref["s2m_loss"][0]), rel=1e-6)
    assert float(term(outputs, gt, step=40000)) == pytest.approx(float(ref["s2m_loss"][-1]), rel=1e-6)
    # ignore pixels (-1) leave the mean: the loss equals the loss of the other pixels alone
    ignored = gt.clone()
    ignored[0] = -1
    half = S2MLossTerm()({"object_logits": outputs["object_logits"][1:]}, gt[1:], step=0)
    torch.testing.assert_close(term(outputs, ignored, step=0), half)


def test_bad_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="start_warm < end_warm"):
        BootstrappedCE(start_warm=5, end_warm=5)
