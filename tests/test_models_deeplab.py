"""DeepLabV3+ / ResNet models: official key layout, forward shapes, timm backbone parity, lr multipliers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from iseg.models.backbones.deeplab_v3 import DeepLabV3Plus
from iseg.models.backbones.resnet import TIMM_RESNETS, ResNetBackbone
from iseg.models.deeplab_model import DeeplabModel
from iseg.models.init import PretrainedWeightsUnavailable, lr_multiplier_groups

from tests.conftest import FIXTURES, SHARED
from tests.golden import fill_rule_state_dict, load_spec

SPECS = FIXTURES / "golden" / "models"
ITER_M = dict(use_rgb_conv=False, use_disks=True, norm_radius=5, with_prev_mask=True, use_leaky_relu=True)
FCFI_EXTRAS = ("feature_extractor.correction_module.", "feature_extractor.feedback_fusion.")
# (spec variant, backbone, deeplab_ch, prefixes of spec keys that belong to other methods)
OFFICIAL = {
    "r34": ("fbrs_resnet34_dh128", "resnet34", 128, ()),
    "r101": ("fcfi_resnet101", "resnet101", 256, FCFI_EXTRAS),
}


@pytest.fixture(scope="module")
def models() -> dict[str, DeeplabModel]:
    torch.manual_seed(0)
    return {
        key: DeeplabModel(backbone=backbone, deeplab_ch=ch, aspp_dropout=0.2, **ITER_M).eval()
        for key, (_, backbone, ch, _) in OFFICIAL.items()
    }


def _official_tensors(variant: str, skip: tuple[str, ...]) -> list[tuple[str, tuple[int, ...]]]:
    spec = json.loads((SPECS / variant / "spec.json").read_text())
    return [
        (name, tuple(shape))
        for name, shape, *_ in spec["tensors"]
        if name.startswith(("feature_extractor.", "head.")) and not name.startswith(skip)
    ]


def _points(batch: int) -> torch.Tensor:
    """(B, 2N, 3) with N = 2: sample 0 one positive click, sample 1 one positive and two negatives."""
    pts = torch.full((batch, 4, 3), -1.0)
    pts[:, 0] = torch.tensor([30.5, 40.25, 0.0])
    if batch > 1:
        pts[1, 2] = torch.tensor([10.0, 12.0, 1.0])
        pts[1, 3] = torch.tensor([70.0, 90.0, 2.0])
    return pts


@pytest.mark.parametrize("key", sorted(OFFICIAL))
def test_state_dict_matches_official_layout(models: dict[str, DeeplabModel], key: str) -> None:
    """Same feature_extractor/head tensors, shapes and order as the official checkpoints (minus FCFI modules).
    f-BRS checkpoints came from MXNet and have no num_batches_tracked, so those are left out there."""
    variant, _, _, skip = OFFICIAL[key]
    official = _official_tensors(variant, skip)
    has_counters = any(name.endswith("num_batches_tracked") for name, _ in official)
    ours = [
        (name, tuple(t.shape))
        for name, t in models[key].state_dict().items()
        if name.startswith(("feature_extractor.", "head."))
        and (has_counters or not name.endswith("num_batches_tracked"))
    ]
    assert ours == official


def test_state_dict_sizes(models: dict[str, DeeplabModel]) -> None:
    # RITM r34_dh128 has 295 keys (reference §1.6); r101 = FCFI's 781 minus its 66 FFCM/CFFM tensors,
    # with a 3-channel (prev mask + clicks) Conv1S maps_transform instead of FCFI's 2-channel one.
    assert len(models["r34"].state_dict()) == 295
    fcfi = json.loads((SPECS / "fcfi_resnet101" / "spec.json").read_text())["tensors"]
    assert len(fcfi) == 781 and sum(1 for t in fcfi if t[0].startswith(FCFI_EXTRAS)) == 66
    assert len(models["r101"].state_dict()) == 781 - 66
    maps = {k: tuple(v.shape) for k, v in models["r101"].state_dict().items() if k.startswith("maps_transform.")}
    assert maps == {
        "maps_transform.0.weight": (16, 3, 1, 1),
        "maps_transform.0.bias": (16,),
        "maps_transform.2.weight": (64, 16, 3, 3),
        "maps_transform.2.bias": (64,),
        "maps_transform.3.scale": (1,),
    }
    # f-BRS infers the depth from the backbone tensor count without counters (<= 181 r34, <= 531 r101).
    counts = {
        key: sum(
            1
            for k in model.state_dict()
            if k.startswith("feature_extractor.backbone.") and not k.endswith("num_batches_tracked")
        )
        for key, model in models.items()
    }
    assert counts == {"r34": 180, "r101": 530}


@pytest.mark.parametrize(("key", "size"), [("r34", (96, 128)), ("r34", (100, 150)), ("r101", (100, 150))])
def test_forward_shapes_iter_m(models: dict[str, DeeplabModel], key: str, size: tuple[int, int]) -> None:
    model = models[key]
    height, width = size
    torch.manual_seed(1)
    net_input = torch.rand(2, 4, height, width)
    with torch.no_grad():
        out = model(net_input, _points(2))
        image, prev_mask = model.prepare_input(net_input)
        coord = model.maps_transform(model.get_coord_features(image, prev_mask, _points(2)))
        stride4 = model.backbone_forward(image, coord)["instances"]
    assert set(out) == {"instances"}
    assert out["instances"].shape == (2, 1, height, width)
    assert torch.isfinite(out["instances"]).all()
    # stride 2 (conv s2), then stride 4 (max-pool), both rounding up
    assert stride4.shape == (2, 1, math.ceil(math.ceil(height / 2) / 2), math.ceil(math.ceil(width / 2) / 2))
    expected = F.interpolate(stride4, size=size, mode="bilinear", align_corners=True)
    torch.testing.assert_close(out["instances"], expected)


def test_clicks_and_prev_mask_reach_the_output(models: dict[str, DeeplabModel]) -> None:
    model = models["r34"]
    torch.manual_seed(2)
    net_input = torch.rand(1, 4, 96, 128)
    moved = _points(1).clone()
    moved[0, 0, :2] = torch.tensor([70.0, 100.0])
    other_mask = net_input.clone()
    other_mask[:, 3] = 1.0 - other_mask[:, 3]
    with torch.no_grad():
        base = model(net_input, _points(1))["instances"]
        assert not torch.allclose(base, model(net_input, moved)["instances"])
        assert not torch.allclose(base, model(other_mask, _points(1))["instances"])


def test_fbrs_r34_logits_match_reference() -> None:
    """f-BRS r34_dh128 with the fill-rule checkpoint: our backbone + DeepLab decoder + SepConv head,
    fed through f-BRS's rgb_conv (conv, LeakyReLU, BN, conv; built here, it is not part of this
    model), reproduce the reference logits."""
    io_path = SHARED / "golden" / "models" / "fbrs_resnet34_dh128" / "io.npz"
    if not io_path.is_file():
        pytest.skip(f"reference outputs not found at {io_path}")
    spec = load_spec("fbrs_resnet34_dh128")
    state = fill_rule_state_dict(spec)
    for name, _, _, total, _ in spec["tensors"]:
        assert float(state[name].double().sum()) == pytest.approx(total, rel=1e-9, abs=1e-9), name
    model = DeeplabModel(backbone="resnet34", deeplab_ch=128, aspp_dropout=0.2).eval()
    ours = {k: v for k, v in state.items() if not k.startswith("rgb_conv.")}
    missing, unexpected = model.load_state_dict(ours, strict=False)
    assert unexpected == []
    assert all(k.startswith("rgb_conv.") or k.endswith("num_batches_tracked") for k in missing)
    rgb_conv = nn.Sequential(nn.Conv2d(5, 8, 1), nn.LeakyReLU(0.2), nn.BatchNorm2d(8), nn.Conv2d(8, 3, 1)).eval()
    rgb_state = {k[len("rgb_conv.") :]: v for k, v in state.items() if k.startswith("rgb_conv.")}
    rgb_conv.load_state_dict(rgb_state, strict=False)  # f-BRS has no BN counters
    io = np.load(io_path)
    image = torch.from_numpy(io["image_normalized"])
    with torch.no_grad():
        fused = rgb_conv(torch.cat((image, torch.from_numpy(io["coord_features"])), dim=1))
        logits = model.backbone_forward(fused)["instances"]
        logits = F.interpolate(logits, size=image.shape[2:], mode="bilinear", align_corners=True)
    torch.testing.assert_close(logits, torch.from_numpy(io["instances"]), rtol=1e-5, atol=1e-5)


def _randomise_norm_stats(module: nn.Module) -> None:
    generator = torch.Generator().manual_seed(3)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=generator) * 0.1)


@pytest.mark.parametrize("backbone", ["resnet34", "resnet50"])
def test_backbone_equals_plain_timm(backbone: str) -> None:
    """Same weights in a plain timm feature extractor give identical c1/c4; click features enter
    exactly after the stem's first conv+BN+ReLU (timm act1), zero-padded to the stem width."""
    torch.manual_seed(4)
    ours = ResNetBackbone(backbone).eval()
    _randomise_norm_stats(ours)
    plain = timm.create_model(
        TIMM_RESNETS[backbone], pretrained=False, output_stride=8, features_only=True, out_indices=(1, 4)
    )
    plain.load_state_dict(ours.state_dict(), strict=True)
    plain.eval()
    image = torch.randn(1, 3, 60, 84)
    clicks = torch.randn(1, 64, 30, 42)
    with torch.no_grad():
        c1, _, _, c4 = ours(image)
        ref_c1, ref_c4 = plain(image)
        assert torch.equal(c1, ref_c1) and torch.equal(c4, ref_c4)
        zero_c1, _, _, zero_c4 = ours(image, torch.zeros_like(clicks))
        assert torch.equal(zero_c1, ref_c1) and torch.equal(zero_c4, ref_c4)

        stem_width = 64 if backbone == "resnet34" else 128
        assert ours.stem_channels == stem_width
        hook = plain.act1.register_forward_hook(
            lambda _m, _i, out: out + torch.cat((clicks, clicks.new_zeros(1, stem_width - 64, 30, 42)), dim=1)
        )
        try:
            inj_ref_c1, inj_ref_c4 = plain(image)
        finally:
            hook.remove()
        inj_c1, _, _, inj_c4 = ours(image, clicks)
        assert torch.equal(inj_c1, inj_ref_c1) and torch.equal(inj_c4, inj_ref_c4)
        assert not torch.equal(inj_c4, c4)
    assert c1.shape[1:] == (64 if backbone == "resnet34" else 256, 15, 21)
    assert c4.shape[1:] == (512 if backbone == "resnet34" else 2048, 8, 11)


def test_dilations_follow_the_reference() -> None:
    net = ResNetBackbone("resnet50")
    assert [b.conv2.dilation[0] for b in net.layer3] == [1] + [2] * (len(net.layer3) - 1)
    assert [b.conv2.dilation[0] for b in net.layer4] == [2, 4, 4]
    assert all(b.conv2.stride == (1, 1) for b in (*net.layer3, *net.layer4))
    assert [k for k in net.state_dict() if k.startswith("conv1.") and k.endswith("weight")] == [
        "conv1.0.weight", "conv1.1.weight", "conv1.3.weight", "conv1.4.weight", "conv1.6.weight"
    ]


def test_fresh_model_is_xavier_gluon(models: dict[str, DeeplabModel]) -> None:
    state = models["r34"].state_dict()
    # timm zero-initialises each block's last BN; XavierGluon resets every norm to identity.
    assert torch.all(state["feature_extractor.backbone.layer1.0.bn2.weight"] == 1)
    weight = state["feature_extractor.aspp.concurent.1.0.weight"]  # (128, 512, 3, 3)
    fan_in, fan_out = 512 * 9, 128 * 9
    assert weight.std().item() == pytest.approx(math.sqrt(2.0 / ((fan_in + fan_out) / 2)), rel=0.02)
    assert torch.all(state["head.layers.2.bias"] == 0)


def test_lr_multipliers(models: dict[str, DeeplabModel]) -> None:
    model = models["r34"]
    mults = model.lr_multipliers()
    assert list(mults) == [name for name, _ in model.named_parameters()]
    for name, mult in mults.items():
        assert mult == (0.1 if name.startswith("feature_extractor.backbone.") else 1.0), name
    assert mults["feature_extractor.aspp.project.0.weight"] == 1.0
    assert mults["head.layers.2.bias"] == 1.0 and mults["maps_transform.3.scale"] == 1.0
    groups = lr_multiplier_groups(dict(model.named_parameters()), mults, base_lr=5e-4)
    assert [(g["lr_mult"], g["lr"]) for g in groups] == [(0.1, pytest.approx(5e-5)), (1.0, 5e-4)]
    assert len(groups[0]["params"]) == sum(1 for n in mults if n.startswith("feature_extractor.backbone."))

    conv1e = DeeplabModel(
        backbone="resnet34", deeplab_ch=128, backbone_lr_mult=0.5, use_rgb_conv=False, conv_extend=True
    )
    mults = conv1e.lr_multipliers()
    assert mults["maps_transform.weight"] == 0.1 and mults["maps_transform.bias"] == 0.1
    assert mults["feature_extractor.backbone.conv1.weight"] == 0.5
    assert mults["feature_extractor.skip_project.skip_project.0.weight"] == 1.0


def test_pretrained_offline_gives_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(PretrainedWeightsUnavailable, match=r"resnet34\.gluon_in1k.*pretrained=false"):
        DeeplabModel(backbone="resnet34", deeplab_ch=128, pretrained=True)


def test_pretrained_weights_go_into_the_backbone_after_init(monkeypatch: pytest.MonkeyPatch) -> None:
    """With weights available, pretrained=True overwrites the XavierGluon backbone and nothing else."""
    import iseg.models.backbones.resnet as resnet_module

    real_create = resnet_module.create_timm_model
    requested = []

    def fake_imagenet(name: str, pretrained: bool, **kwargs) -> nn.Module:
        net = real_create(name, pretrained=False, **kwargs)
        if pretrained:
            requested.append(name)
            with torch.no_grad():
                for i, tensor in enumerate(net.state_dict().values()):
                    tensor.fill_(0.001 * (i + 1) if tensor.is_floating_point() else i)
        return net

    monkeypatch.setattr(resnet_module, "create_timm_model", fake_imagenet)
    model = DeeplabModel(backbone="resnet34", deeplab_ch=128, pretrained=True, **ITER_M)
    assert requested == ["resnet34.gluon_in1k"]
    backbone = model.feature_extractor.backbone.state_dict()
    for i, tensor in enumerate(backbone.values()):
        expected = 0.001 * (i + 1) if tensor.is_floating_point() else i
        assert torch.all(tensor == torch.tensor(expected, dtype=tensor.dtype))
    # the decoder keeps its XavierGluon initialisation
    assert torch.all(model.feature_extractor.aspp.project[1].weight == 1)
    assert model.feature_extractor.aspp.project[0].weight.std() > 0.01


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="'resnet18'"):
        ResNetBackbone("resnet18")
    with pytest.raises(ValueError, match="with_aux_output"):
        DeeplabModel(backbone="resnet34", deeplab_ch=128, with_aux_output=True)
    with pytest.raises(ValueError, match="deeplab_ch.*127"):
        DeeplabModel(backbone="resnet34", deeplab_ch=127)
    with pytest.raises(ValueError, match="project_dropout.*1.5"):
        DeepLabV3Plus("resnet34", ch=32, project_dropout=1.5)
    net = ResNetBackbone("resnet34").eval()
    with pytest.raises(ValueError, match=r"\(1, 96, 16, 16\)"):
        net(torch.zeros(1, 3, 32, 32), torch.zeros(1, 96, 16, 16))
