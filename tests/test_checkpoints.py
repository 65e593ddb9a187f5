"""load_model: official RITM containers reproduce the reference outputs; iseg Lightning
checkpoints round-trip; wrong or unknown files fail with a diagnosis."""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

import iseg.models.checkpoints as checkpoints
from iseg.models.checkpoints import CheckpointError, build_model_from_official_config, load_model
from iseg.models.hrnet_model import HRNetModel
from tests.golden import fill_rule_state_dict, load_io, load_spec, make_official_checkpoint, official_config

RITM_HRNETS = ["ritm_hrnet18s_itermask", "ritm_hrnet18_itermask", "ritm_hrnet32_itermask"]
ITER_M = dict(
    use_rgb_conv=False, use_disks=True, norm_radius=5, use_leaky_relu=True, with_prev_mask=True, with_aux_output=True
)


@pytest.fixture(scope="module")
def official_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Stand-ins for the released .pth files, written once per test module."""
    folder = tmp_path_factory.mktemp("official")
    return {variant: make_official_checkpoint(load_spec(variant), folder / f"{variant}.pth") for variant in RITM_HRNETS}


def _assert_logits_close(actual: torch.Tensor, reference: np.ndarray, name: str) -> None:
    ref = torch.from_numpy(reference)
    tolerance = 1e-4 * ref.abs().max() + 1e-5  # golden README: op-order rounding in deep HRNets
    worst = (actual - ref).abs().max()
    assert worst <= tolerance, f"{name}: max |diff| {worst:.3g} > {tolerance:.3g}"


@pytest.mark.parametrize("variant", RITM_HRNETS)
def test_official_ritm_checkpoint_reproduces_reference_outputs(variant: str, official_files: dict[str, Path]) -> None:
    spec, io = load_spec(variant), load_io(variant)
    model = load_model(official_files[variant])
    assert isinstance(model, HRNetModel) and not model.training
    state = model.state_dict()
    for name, _, _, total, abs_total in spec["tensors"][:: max(1, len(spec["tensors"]) // 40)]:
        assert state[name].double().sum().item() == pytest.approx(total, rel=1e-6, abs=1e-6), name
        assert state[name].double().abs().sum().item() == pytest.approx(abs_total, rel=1e-6, abs=1e-6), name

    image, prev_mask = torch.from_numpy(io["image"]), torch.from_numpy(io["prev_mask"])
    points, points_first = torch.from_numpy(io["points"]), torch.from_numpy(io["points_first"])
    with torch.no_grad():
        out = model(torch.cat([image, prev_mask], dim=1), points)
        first = model(torch.cat([image, torch.zeros_like(prev_mask)], dim=1), points_first)
        coord_features = model.get_coord_features(image, prev_mask, points)
    assert torch.equal(coord_features, torch.from_numpy(io["coord_features"]))
    _assert_logits_close(out["instances"], io["instances"], "instances")
    _assert_logits_close(out["instances_aux"], io["instances_aux"], "instances_aux")
    _assert_logits_close(first["instances"], io["instances_first"], "instances_first")
    _assert_logits_close(first["instances_aux"], io["instances_aux_first"], "instances_aux_first")


def test_config_params_map_onto_the_constructor() -> None:
    spec = load_spec("ritm_hrnet18s_itermask")
    config = official_config(spec)
    # unspecified, but differs from the default: must be passed
    config["params"]["binary_prev_mask"] = {"type": "builtin", "value": True, "specified": False}
    model = build_model_from_official_config(config)
    assert isinstance(model, HRNetModel)
    assert model.binary_prev_mask and model.with_prev_mask and model.with_aux_output
    assert model.feature_extractor.small and model.feature_extractor.ocr_width == 48
    assert isinstance(model.feature_extractor.bn1, nn.BatchNorm2d)
    assert model.dist_maps.radius == 5


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update({"class": "isegm.model.is_foo.FooModel"}), r"config.class 'isegm.model.is_foo.FooModel'"),
        (
            lambda c: c["params"].update(mystery={"type": "builtin", "value": 3, "specified": True}),
            r"'mystery'.*not an argument",
        ),
        (
            lambda c: c["params"].update(norm_layer={"type": "class", "value": "os.system", "specified": True}),
            r"norm_layer.*'os.system'",
        ),
        (lambda c: c["params"].update(width={"type": "lambda", "value": 18}), r"'width'.*unknown type 'lambda'"),
    ],
)
def test_bad_official_configs_are_named(edit, message: str) -> None:
    config = official_config(load_spec("ritm_hrnet18s_itermask"))
    edit(config)
    with pytest.raises(CheckpointError, match=message):
        build_model_from_official_config(config)


def test_wrong_architecture_lists_keys_and_shapes(tmp_path: Path, official_files: dict[str, Path]) -> None:
    """An HRNet-W32 file whose config says W18: every difference is listed, and what the file holds."""
    w32 = torch.load(official_files["ritm_hrnet32_itermask"], weights_only=True)
    path = tmp_path / "w32_weights_w18_config.pth"
    torch.save({"state_dict": w32["state_dict"], "config": official_config(load_spec("ritm_hrnet18_itermask"))}, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message
    assert "HRNetModel [HRNet-W18, OCR 64" in message and "the file seems to hold [HRNet-W32, OCR 128" in message
    assert "shape mismatches (" in message
    key = "feature_extractor.stage2.0.branches.0.0.conv1.weight"
    assert f"{key}: expected (18, 18, 3, 3), found (32, 32, 3, 3)" in message
    assert "missing keys" not in message and "unexpected keys" not in message


def test_missing_and_unexpected_keys_are_listed() -> None:
    spec = load_spec("ritm_hrnet18s_itermask")
    state = fill_rule_state_dict(spec)
    state["feature_extractor.extra_head.weight"] = state.pop("feature_extractor.cls_head.weight")
    with pytest.raises(CheckpointError) as info:
        load_model({"state_dict": state, "config": official_config(spec)})
    message = str(info.value)
    assert "<in-memory checkpoint> (ritm checkpoint)" in message
    assert "missing keys (1): [feature_extractor.cls_head.weight]" in message
    assert "unexpected keys (1): [feature_extractor.extra_head.weight]" in message
    assert "HRNet-W18-small, OCR 48, Conv1S click fusion of 3 maps, 929 tensors" in message


def test_unknown_files_are_named_with_their_content(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "epoch": 3}, path)
    with pytest.raises(CheckpointError, match=rf"{path}: not a known checkpoint format .*keys \[model, epoch\]"):
        load_model(path)
    tensor_file = tmp_path / "tensor.pth"
    torch.save(torch.zeros(2), tensor_file)
    with pytest.raises(CheckpointError, match=r"tensor.pth: not a known checkpoint format .*found a Tensor"):
        load_model(tensor_file)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"notes.pth: cannot be read as a torch checkpoint"):
        load_model(text)
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_model(tmp_path / "absent.pth")


def test_official_files_need_no_unpickling_of_code(official_files: dict[str, Path]) -> None:
    """The RITM container loads with weights_only=True (tensors, dicts, tuples, strings only)."""
    obj = torch.load(official_files["ritm_hrnet18s_itermask"], weights_only=True)
    assert set(obj) == {"state_dict", "config"} and isinstance(obj["config"]["params"]["norm_mean_std"]["value"], tuple)


def _hydra_net_config(**overrides) -> dict:
    config = {"_target_": "iseg.models.hrnet_model.HRNetModel", "width": 18, "ocr_width": 48, "small": True, **ITER_M}
    return config | overrides


def test_lightning_checkpoint_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # pretrained must be skipped, never fetched
    torch.manual_seed(1)
    net = HRNetModel(width=18, ocr_width=48, small=True, **ITER_M)
    with torch.no_grad():
        for buffer_name, buffer in net.named_buffers():
            if buffer_name.endswith("running_mean"):
                buffer.uniform_(-0.1, 0.1)
    state = OrderedDict((f"net.{k}", v) for k, v in net.state_dict().items())
    state["loss.weight"] = torch.ones(1)  # training-module state that is not part of the network
    path = tmp_path / "epoch=1.ckpt"
    torch.save(
        {
            "epoch": 1,
            "state_dict": state,
            "hyper_parameters": OmegaConf.create({"net": _hydra_net_config(pretrained=True), "lr": 5e-4}),
        },
        path,
    )
    loaded = load_model(path)
    assert isinstance(loaded, HRNetModel) and not loaded.training
    assert loaded.state_dict().keys() == net.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values()))
    image = torch.rand(1, 4, 48, 64, generator=torch.Generator().manual_seed(0))
    points = torch.tensor([[[20.0, 30.0, 0.0], [-1.0, -1.0, -1.0]]])
    with torch.no_grad():
        assert torch.equal(loaded(image, points)["instances"], net.eval()(image, points)["instances"])


def test_lightning_checkpoint_errors() -> None:
    state = {"net.maps_transform.0.weight": torch.zeros(16, 3, 1, 1)}
    with pytest.raises(CheckpointError, match=r"hyper_parameters\['net'\] must be the network's Hydra config"):
        load_model({"state_dict": state, "hyper_parameters": {"lr": 1.0}})
    with pytest.raises(CheckpointError, match=r"_target_ 'os.system' is not an iseg class"):
        load_model({"state_dict": state, "hyper_parameters": {"net": {"_target_": "os.system"}}})
    with pytest.raises(CheckpointError, match=r"missing keys \(928\)"):
        load_model({"state_dict": state, "hyper_parameters": {"net": _hydra_net_config()}})
    with pytest.raises(CheckpointError, match=r"no 'net\.\*' keys; found \[model.w\]"):
        load_model({"state_dict": {"model.w": torch.zeros(1)}, "hyper_parameters": {"net": _hydra_net_config()}})


def test_deeplab_container_goes_to_the_deeplab_model() -> None:
    from iseg.models.deeplab_model import DeeplabModel

    config = {
        "class": "isegm.model.is_deeplab_model.DeeplabModel",
        "params": {
            "backbone": {"type": "builtin", "value": "resnet34", "specified": True},
            "deeplab_ch": {"type": "builtin", "value": 128, "specified": True},
            "aspp_dropout": {"type": "builtin", "value": 0.2, "specified": True},
            "use_rgb_conv": {"type": "builtin", "value": False, "specified": True},
            "backbone_lr_mult": {"type": "builtin", "value": 0.1, "specified": False},
            "norm_layer": {"type": "class", "value": "torch.nn.modules.batchnorm.BatchNorm2d", "specified": False},
        },
    }
    torch.manual_seed(0)
    model = build_model_from_official_config(config)
    assert isinstance(model, DeeplabModel)
    state = copy.deepcopy(model.state_dict())
    loaded = load_model({"state_dict": state, "config": config})
    assert isinstance(loaded, DeeplabModel) and len(loaded.state_dict()) == 295
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), state.values()))


def test_formats_register_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """A more specific format registered before 'ritm' sees the file first."""
    monkeypatch.setattr(checkpoints, "CHECKPOINT_FORMATS", list(checkpoints.CHECKPOINT_FORMATS))

    class Marked:
        name = "marked"

        def matches(self, obj) -> bool:
            return isinstance(obj, dict) and obj.get("config", {}).get("marker") == 1

        def build(self, obj) -> nn.Module:
            return nn.Identity()

    checkpoints.register_checkpoint_format(Marked(), before="ritm")
    assert [f.name for f in checkpoints.CHECKPOINT_FORMATS] == ["fcfi", "marked", "ritm", "lightning", "fbrs", "s2m", "iog", "forte"]
    assert isinstance(load_model({"state_dict": {}, "config": {"class": "x", "marker": 1}}), nn.Identity)
    with pytest.raises(ValueError, match="already registered"):
        checkpoints.register_checkpoint_format(Marked())
    with pytest.raises(ValueError, match="unknown format 'nope'"):
        checkpoints.register_checkpoint_format(type("Other", (Marked,), {"name": "other"})(), before="nope")


def test_a_directory_is_reported_as_one(tmp_path: Path) -> None:
    (tmp_path / "last.ckpt").write_bytes(b"")
    with pytest.raises(IsADirectoryError, match=r"is a directory, not a file; it holds last.ckpt"):
        load_model(tmp_path)
