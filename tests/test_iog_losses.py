"""IOG's loss against the reference's class_cross_entropy_loss (golden losses/iog_bce.npz)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from iseg.losses import LossTerm
from iseg.methods.iog_losses import (
    IOGCrossEntropy,
    bce_per_pixel,
    iog_cross_entropy,
    refinement_loss,
    refinement_round_loss,
)
from tests.conftest import FIXTURES

GOLDEN = FIXTURES / "golden" / "losses"


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN / "iog_bce.npz") as data:
        arrays = {key: torch.from_numpy(data[key]) for key in data.files}
    arrays["json"] = json.loads((GOLDEN / "s2m_iog_losses.json").read_text())["iog_class_cross_entropy_loss"]
    return arrays


def _close(value: torch.Tensor, reference, rel: float = 1e-5) -> None:
    assert float(value) == pytest.approx(float(reference), rel=rel)


def test_reference_reductions(golden):
    out, label, void = golden["output"], golden["label"], golden["void"]
    torch.testing.assert_close(bce_per_pixel(out, label), golden["per_pixel_loss"], rtol=1e-5, atol=1e-5)
    _close(iog_cross_entropy(out, label, void), golden["void_sum_batchavg"])
    _close(iog_cross_entropy(out, label), golden["novoid_sum_batchavg"])
    _close(iog_cross_entropy(out, label, void, size_average=True), golden["void_sizeavg"])
    _close(iog_cross_entropy(out, label, void, batch_average=False), golden["void_sum"])


def test_the_loss_term_on_iseg_labels_is_the_reference_batch_average(golden):
    """gt in {-1, 0, 1}: -1 where void > 0.5, else label >= 0.5; LossTerm's batch mean = the reference's /B."""
    out, label, void = golden["output"], golden["label"], golden["void"]
    gt = torch.where(void > 0.5, torch.tensor(-1.0), (label >= 0.5).float()).to(torch.int8)
    term = LossTerm(IOGCrossEntropy(), output="instances")
    _close(term({"instances": out}, gt), golden["void_sum_batchavg"])


def test_main_total_and_refinement_round_weighting(golden):
    maps, label, void = golden["round_maps"], golden["label"], golden["void"]
    losses = [[iog_cross_entropy(maps[r, m], label, void) for m in range(5)] for r in range(2)]
    for r in range(2):
        for m in range(5):
            _close(losses[r][m], golden["json"]["round_map_losses"][r][m])
    _close(sum(losses[0]), golden["main_total_round0"])
    rounds = [refinement_round_loss(losses[r]) for r in range(2)]
    _close(rounds[0], golden["refine_L0"])
    _close(rounds[1], golden["refine_L1"])
    _close(refinement_loss(rounds, iou0=0.96), golden["json"]["refine_final_iou0_0.96"])
    _close(refinement_loss(rounds, iou0=0.50), golden["json"]["refine_final_iou0_0.50"])
    _close(refinement_round_loss(losses[0], coarse4_twice=False), golden["refine_L0"] - losses[0][3])


def test_imagenet_init_widens_conv1_with_zeros(tmp_path):
    """A torchvision ResNet-101 state dict (written here, random weights) initialises IOG's backbone."""
    import torchvision

    from iseg.models.iog import IOGRefinementNetwork

    torch.manual_seed(0)
    state = torchvision.models.resnet101(weights=None).state_dict()
    path = tmp_path / "resnet101.pth"
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, path)
    net = IOGRefinementNetwork(pretrained=str(path))
    conv1 = net.backbone.conv1.weight
    assert conv1.shape == (64, 5, 7, 7) and torch.equal(conv1[:, :3], state["conv1.weight"])
    assert not conv1[:, 3:].any()
    for key in ("layer3.22.conv3.weight", "layer4.2.bn3.running_var", "layer1.0.downsample.0.weight"):
        assert torch.equal(net.backbone.state_dict()[key], state[key]), key
    assert not torch.equal(net.iog_points[0].weight, torch.zeros_like(net.iog_points[0].weight))
    with pytest.raises(FileNotFoundError, match="missing.pth do not exist"):
        IOGRefinementNetwork(pretrained=str(tmp_path / "missing.pth"))
