"""S2M network: the official s2m.pth layout (stand-in built from the golden spec) loads through
load_model and reproduces the reference forward, aggregated outputs included; bad files are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from iseg.inference.aggregation import aggregate_logits
from iseg.models.checkpoints import CheckpointError, load_model
from iseg.models.s2m import S2MNet
from iseg.models.s2m.network import IMAGENET_MEAN, IMAGENET_STD
from tests.golden import fill_rule_state_dict, load_io, load_spec

VARIANT = "s2m_deeplabv3plus_resnet50"


@pytest.fixture(scope="module")
def official_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in for s2m.pth: torch.save of the plain state dict (the spec's container)."""
    spec = load_spec(VARIANT)
    assert spec["official_checkpoint"]["container"].startswith("plain state dict")
    path = tmp_path_factory.mktemp("s2m") / "s2m.pth"
    torch.save(fill_rule_state_dict(spec), path)
    return path


@pytest.fixture(scope="module")
def official_model(official_file: Path) -> S2MNet:
    return load_model(official_file)


def _assert_close(actual: torch.Tensor, reference: np.ndarray, name: str, tolerance: float | None = None) -> None:
    ref = torch.from_numpy(reference)
    assert actual.shape == ref.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(ref.shape)}"
    tolerance = tolerance if tolerance is not None else 1e-4 * ref.abs().max().item() + 1e-5
    worst = (actual - ref).abs().max().item()
    assert worst <= tolerance, f"{name}: max |diff| {worst:.3g} > {tolerance:.3g}"


def test_state_dict_layout_matches_the_official_file() -> None:
    spec = load_spec(VARIANT)
    net = S2MNet()
    state = net.state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == [(name, shape) for name, shape, *_ in spec["tensors"]]
    assert sum(p.numel() for p in net.parameters()) == spec["architecture"]["num_parameters"]


def test_official_checkpoint_reproduces_reference_outputs(official_model: S2MNet) -> None:
    io = load_io(VARIANT)
    assert type(official_model) is S2MNet and not official_model.training
    x = torch.from_numpy(io["input"])
    with torch.no_grad():
        low_level, out = official_model.backbone(x)
        z = official_model.logits(x)
        # the same input through the public forward: image in [0, 1], masks as they are
        mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        outputs = official_model(x[:, :3] * std + mean, x[:, 3:4], x[:, 4:6])
    _assert_close(low_level[:, :8], io["probe_low_level_c0_7"], "layer1 probe")
    _assert_close(out[:, :8], io["probe_out_c0_7"], "layer4 probe")
    _assert_close(z, io["logits"], "logits")
    _assert_close(outputs["object_logits"], io["logits"], "object_logits via forward")
    _assert_close(aggregate_logits(torch.sigmoid(z)), io["agg_logits"], "agg_logits")
    _assert_close(torch.sigmoid(outputs["instances"]), io["agg_prob"], "agg_prob", tolerance=1e-5)


def test_training_checkpoint_container_loads(official_file: Path, tmp_path: Path) -> None:
    """The reference's training file {'it', 'network', 'optimizer', 'scheduler'} holds the same network."""
    path = tmp_path / "s2m_checkpoint.pth"
    torch.save({"it": 20000, "network": torch.load(official_file), "optimizer": {}, "scheduler": {}}, path)
    model = load_model(path)
    assert torch.equal(model.state_dict()["classifier.classifier.3.bias"], torch.load(official_file)["classifier.classifier.3.bias"])


def test_three_channel_deeplab_is_refused_as_a_model(official_file: Path, tmp_path: Path) -> None:
    state = torch.load(official_file)
    state["backbone.conv1.weight"] = state["backbone.conv1.weight"][:, :3].clone()
    path = tmp_path / "deeplab3.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"backbone.conv1.weight has shape \(64, 3, 7, 7\).*6 input channels"):
        load_model(path)


def test_truncated_state_dict_is_diagnosed(official_file: Path, tmp_path: Path) -> None:
    state = torch.load(official_file)
    del state["classifier.classifier.3.bias"]
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"(?s)s2m checkpoint.*missing keys \(1\).*classifier.classifier.3.bias"):
        load_model(path)
