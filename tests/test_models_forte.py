"""Forte et al.'s network: the stand-in official checkpoint loads through load_model and reproduces
the reference forward (golden ``forte_resnet50``); weight standardisation and the guided filter
follow their formulas; bad checkpoints are reported with the key at fault."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from guided_filter_pytorch.guided_filter import GuidedFilter

from iseg.models.checkpoints import CheckpointError, load_model
from iseg.models.forte import ForteNet
from iseg.models.forte.layers import WSConv2d
from tests.golden import fill_rule_state_dict, load_io, load_spec

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def official_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-in for InterSegSynthFT.pth: the bare state dict the reference saves."""
    path = tmp_path_factory.mktemp("forte_official") / "InterSegSynthFT.pth"
    torch.save(fill_rule_state_dict(load_spec("forte_resnet50")), path)
    return path


def test_official_checkpoint_reproduces_reference_forward(official_file: Path, one_thread: None) -> None:
    spec, io = load_spec("forte_resnet50"), load_io("forte_resnet50")
    model = load_model(official_file)
    assert isinstance(model, ForteNet) and not model.training
    assert list(model.state_dict()) == [name for name, *_ in spec["tensors"]]
    assert sum(p.numel() for p in model.parameters()) == spec["architecture"]["num_parameters"]
    image = torch.from_numpy(io["image"]) * IMAGENET_STD + IMAGENET_MEAN  # the net normalises itself
    with torch.no_grad():
        out = model(
            image,
            torch.from_numpy(io["click_maps"]),
            torch.from_numpy(io["prev_alpha"]),
            torch.from_numpy(io["trimap"]),
            probes=True,
        )
    for key, ref, tol in (
        ("instances_raw", "probe_conv_up4_raw", 1e-4),
        ("guide", "probe_guide", 1e-4),
        ("pred_before_gf", "probe_pred_before_gf", 1e-4),
        ("instances", "alpha", 5e-4),
    ):
        np.testing.assert_allclose(out[key].numpy(), io[ref], rtol=0, atol=tol, err_msg=key)
    # clicked pixels are forced before the filter
    trimap = io["trimap"]
    assert (out["pred_before_gf"].numpy()[:, 0][trimap[:, 1] == 1] == 1).all()
    assert (out["pred_before_gf"].numpy()[:, 0][trimap[:, 0] == 1] == 0).all()


def test_checkpoint_with_a_wrong_shape_names_the_key(official_file: Path, tmp_path: Path) -> None:
    state = torch.load(official_file)
    state["decoder.conv_up4.0.weight"] = torch.zeros(32, 74, 3, 3)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match=r"(?s)forte checkpoint.*decoder\.conv_up4\.0\.weight"):
        load_model(bad)


def test_weight_standardisation_formula() -> None:
    torch.manual_seed(0)
    conv = WSConv2d(4, 3, 3, padding=1)
    w = conv.weight.detach().double().numpy().reshape(3, -1)
    ws = (w - w.mean(1, keepdims=True)) / (np.sqrt(w.var(1, ddof=1, keepdims=True) + 1e-12) + 1e-5)
    np.testing.assert_allclose(conv.standardized_weight().detach().numpy().reshape(3, -1), ws, atol=1e-6)
    x = torch.randn(1, 4, 8, 8)
    expected = F.conv2d(x, torch.from_numpy(ws).float().view(3, 4, 3, 3), conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=0)


def _box_mean_float64(x: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Window sums of radius r truncated at the borders and the window sizes, by explicit loops."""
    h, w = x.shape
    sums, counts = np.zeros_like(x), np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            window = x[max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1]
            sums[i, j], counts[i, j] = window.sum(), window.size
    return sums, counts


def test_guided_filter_package_matches_its_formula() -> None:
    """GuidedFilter(r=2, eps=1e-8) is He et al.'s filter with border-truncated box means."""
    rng = np.random.default_rng(0)
    guide, src = rng.random((9, 11)), rng.random((9, 11))
    r, eps = 2, 1e-8

    def mean(a: np.ndarray) -> np.ndarray:
        sums, counts = _box_mean_float64(a, r)
        return sums / counts

    mean_g, mean_p = mean(guide), mean(src)
    a = (mean(guide * src) - mean_g * mean_p) / (mean(guide * guide) - mean_g**2 + eps)
    b = mean_p - a * mean_g
    expected = mean(a) * guide + mean(b)
    got = GuidedFilter(r, eps)(torch.from_numpy(guide)[None, None], torch.from_numpy(src)[None, None])
    np.testing.assert_allclose(got[0, 0].numpy(), expected, atol=1e-9)


def test_input_sizes_are_checked() -> None:
    net = ForteNet()
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.zeros(1, 3, 20, 24), torch.zeros(1, 6, 20, 24), torch.zeros(1, 1, 20, 24), torch.zeros(1, 2, 20, 24))
    with pytest.raises(ValueError, match="click_maps must have shape"):
        net(torch.zeros(1, 3, 16, 24), torch.zeros(1, 5, 16, 24), torch.zeros(1, 1, 16, 24), torch.zeros(1, 2, 16, 24))


def test_lr_multipliers_cover_every_parameter() -> None:
    net = ForteNet(backbone_lr_mult=0.1)
    mults = net.lr_multipliers()
    assert set(mults) == {name for name, _ in net.named_parameters()}
    assert mults["encoder.conv1.weight"] == 0.1 and mults["decoder.conv_up4.4.bias"] == 1.0
