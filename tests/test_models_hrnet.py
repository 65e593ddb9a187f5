"""HRNet+OCR network: official key layout, RITM fuse behaviour, heads, lr multipliers, ImageNet weights."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from iseg.models.backbones.hrnet_ocr import HRFuseModule, HRNetOCR, timm_hrnet_name
from iseg.models.hrnet_model import HRNetModel
from iseg.models.init import PretrainedWeightsUnavailable, lr_multiplier_groups
from tests.golden import load_spec

# Every released ITER-M config passes these (reference §1.2).
ITER_M = dict(
    use_rgb_conv=False, use_disks=True, norm_radius=5, use_leaky_relu=True, with_prev_mask=True, with_aux_output=True
)
VARIANTS = {
    "ritm_hrnet18s_itermask": dict(width=18, ocr_width=48, small=True),
    "ritm_hrnet18_itermask": dict(width=18, ocr_width=64, small=False),
    "ritm_hrnet32_itermask": dict(width=32, ocr_width=128, small=False),
}
H18S = VARIANTS["ritm_hrnet18s_itermask"]


def _inputs(height: int, width: int, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 4, height, width, generator=generator)
    points = torch.tensor([[[height / 2, width / 3, 0], [-1, -1, -1], [height / 4, width / 2, 1], [-1, -1, -1]]])
    return image, points.expand(batch, -1, -1)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_state_dict_matches_the_official_checkpoint(variant: str) -> None:
    """Same names, order and shapes as the released file; counts of reference §1.6."""
    spec = load_spec(variant)
    model = HRNetModel(**VARIANTS[variant], **ITER_M)
    state = model.state_dict()
    assert [(name, list(t.shape)) for name, t in state.items()] == [(r[0], r[1]) for r in spec["tensors"]]
    expected_keys = 929 if VARIANTS[variant]["small"] else 1895
    assert len(state) == spec["num_tensors"] == expected_keys
    assert sum(k.startswith("feature_extractor.") for k in state) == expected_keys - 5
    assert sum(p.numel() for p in model.parameters()) == spec["num_parameters"]
    if variant == "ritm_hrnet18s_itermask":
        assert spec["num_parameters"] == 4_220_047


def test_timm_names_and_invalid_widths() -> None:
    assert timm_hrnet_name(18, small=True) == "hrnet_w18_small_v2"
    assert timm_hrnet_name(48, small=False) == "hrnet_w48"
    with pytest.raises(ValueError, match="small=True.*width=18.*width=32"):
        timm_hrnet_name(32, small=True)
    with pytest.raises(ValueError, match="width=20"):
        HRNetOCR(width=20)


def test_fuse_layers_resize_bilinearly_to_the_exact_branch_size() -> None:
    """RITM's fuse: 1x1 conv+BN, then bilinear align_corners=True to the target size, summed from j=0."""
    torch.manual_seed(0)
    net = HRNetOCR(width=18, ocr_width=48, small=True).eval()
    assert not any(isinstance(m, nn.Upsample) for m in net.modules())
    module = net.stage2[0]
    assert isinstance(module, HRFuseModule)
    # sizes a stride-2 conv gives from an odd map: 13 -> 7, 19 -> 10 (not an exact factor of 2)
    x = [torch.randn(1, 18, 13, 19), torch.randn(1, 36, 7, 10)]
    with torch.no_grad():
        y0, y1 = module(list(x))
        b0, b1 = module.branches[0](x[0]), module.branches[1](x[1])
        up = nn.functional.interpolate(module.fuse_layers[0][1](b1), size=(13, 19), mode="bilinear", align_corners=True)
        down = module.fuse_layers[1][0](b0)
    assert y0.shape == (1, 18, 13, 19) and y1.shape == (1, 36, 7, 10)
    torch.testing.assert_close(y0, torch.relu(b0 + up), rtol=0, atol=0)
    torch.testing.assert_close(y1, torch.relu(down + b1), rtol=0, atol=0)
    # a nearest x2 upsample (timm's) would give a different map
    nearest = nn.functional.interpolate(module.fuse_layers[0][1](b1), scale_factor=2, mode="nearest")[..., :13, :19]
    assert not torch.allclose(up, nearest, atol=1e-3)


def test_fuse_relu_off_keeps_negative_responses() -> None:
    """FCFI removes the ReLU after each fuse; the keys stay the same."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    with_relu = HRNetOCR(width=18, ocr_width=48, small=True).eval()
    without = HRNetOCR(width=18, ocr_width=48, small=True, fuse_relu=False).eval()
    assert all(isinstance(m.fuse_act, nn.Identity) for s in (without.stage2, without.stage3, without.stage4) for m in s)
    without.load_state_dict(with_relu.state_dict())
    assert list(without.state_dict()) == list(with_relu.state_dict())
    with torch.no_grad():
        relu_out = with_relu.stages(with_relu.stem(x))
        plain_out = without.stages(without.stem(x))
    assert all(t.min() >= 0 for t in relu_out)
    assert any(t.min() < 0 for t in plain_out)


@pytest.mark.parametrize("size", [(100, 150), (97, 131)])
def test_input_sizes_not_divisible_by_32(size: tuple[int, int]) -> None:
    model = HRNetModel(**H18S, **ITER_M).eval()
    image, points = _inputs(*size)
    with torch.no_grad():
        out = model(image, points)
    assert out["instances"].shape == (1, 1, *size) and out["instances_aux"].shape == (1, 1, *size)
    assert torch.isfinite(out["instances"]).all() and torch.isfinite(out["instances_aux"]).all()


def test_stem_receives_click_features_before_conv2() -> None:
    """Changing only the clicks changes the logits, through maps_transform added after act1."""
    model = HRNetModel(**H18S, **ITER_M).eval()
    image, points = _inputs(64, 96)
    seen: list[torch.Tensor] = []
    model.feature_extractor.conv2.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    with torch.no_grad():
        base = model(image, points)["instances"]
        stem = model.feature_extractor.act1(model.feature_extractor.bn1(model.feature_extractor.conv1(
            model.normalization(image[:, :3]))))
        maps = model.maps_transform(model.get_coord_features(image[:, :3], image[:, 3:], points))
        moved = model(image, points.flip(1))["instances"]
    torch.testing.assert_close(seen[0], stem + maps, rtol=0, atol=0)
    assert not torch.allclose(base, moved)


def test_without_ocr_the_head_is_a_plain_conv_head() -> None:
    model = HRNetModel(**H18S | {"ocr_width": 0}, **ITER_M | {"with_aux_output": False}).eval()
    backbone = ("feature_extractor.stage", "feature_extractor.transition", "feature_extractor.layer")
    keys = [k for k in model.state_dict() if not k.startswith(backbone)]
    head = [k for k in keys if k.startswith("feature_extractor.cls_head")]
    assert sorted({".".join(k.split(".")[2:3]) for k in head}) == ["0", "1", "3"]
    assert model.state_dict()["feature_extractor.cls_head.0.weight"].shape == (270, 270, 3, 3)
    assert not any("aux_head" in k or "ocr" in k for k in keys)
    image, points = _inputs(70, 90)
    with torch.no_grad():
        out = model(image, points)
    assert set(out) == {"instances"} and out["instances"].shape == (1, 1, 70, 90)
    with pytest.raises(ValueError, match="ocr_width=0 has no aux output"):
        HRNetModel(**H18S | {"ocr_width": 0}, **ITER_M)


def test_xavier_gluon_init_of_fresh_models() -> None:
    torch.manual_seed(0)
    model = HRNetModel(**H18S, **ITER_M)
    weight = model.feature_extractor.aux_head[0].weight  # 270x270 1x1: fan_in = fan_out = 270
    assert weight.std().item() == pytest.approx(math.sqrt(2 / 270), rel=0.02)
    assert torch.all(model.feature_extractor.aux_head[0].bias == 0)
    bn = model.feature_extractor.stage4[1].branches[3][1].bn2
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    assert model.maps_transform[3].scale.item() == pytest.approx(0.05)


def test_lr_multipliers_follow_ritm() -> None:
    """Reference §1.7: feature_extractor x backbone_lr_mult (aux_head and cls_head too), OCR x1."""
    model = HRNetModel(**H18S, **ITER_M)
    mults = model.lr_multipliers()
    assert set(mults) == {name for name, _ in model.named_parameters()}
    full_lr = ("feature_extractor.conv3x3_ocr.", "feature_extractor.ocr_distri_head.", "maps_transform.")
    for name, mult in mults.items():
        assert mult == (1.0 if name.startswith(full_lr) else 0.1), name
    assert mults["feature_extractor.aux_head.3.weight"] == 0.1 and mults["feature_extractor.cls_head.bias"] == 0.1
    assert mults["maps_transform.3.scale"] == 1.0
    groups = lr_multiplier_groups(dict(model.named_parameters()), mults, base_lr=5e-4)
    assert [(g["lr_mult"], g["lr"]) for g in groups] == [(0.1, pytest.approx(5e-5)), (1.0, 5e-4)]
    assert len(groups[1]["params"]) == sum(1 for n in mults if n.startswith(full_lr))

    conv1e = HRNetModel(**H18S, backbone_lr_mult=0.25, use_rgb_conv=False, conv_extend=True)
    mults = conv1e.lr_multipliers()
    assert mults["maps_transform.weight"] == 0.1 and mults["feature_extractor.conv1.weight"] == 0.25
    assert mults["feature_extractor.ocr_distri_head.conv_bn_dropout.0.weight"] == 1.0


def test_other_norm_layer_replaces_every_batchnorm() -> None:
    net = HRNetOCR(width=18, ocr_width=48, small=True, norm_layer=nn.SyncBatchNorm)
    assert not any(type(m) is nn.BatchNorm2d for m in net.modules())
    assert list(net.state_dict()) == list(HRNetOCR(width=18, ocr_width=48, small=True).state_dict())


def test_pretrained_offline_gives_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(PretrainedWeightsUnavailable, match=r"hrnet_w18_small_v2\.ms_in1k.*pretrained=false"):
        HRNetModel(**H18S, pretrained=True, **ITER_M)


def test_pretrained_weights_go_into_the_backbone_after_init(monkeypatch: pytest.MonkeyPatch) -> None:
    """ImageNet weights overwrite stem..stage4 only; heads and click fusion keep XavierGluon."""
    import iseg.models.backbones.hrnet_ocr as hrnet_module

    real_create = hrnet_module.create_timm_model
    requested = []

    def fake_imagenet(name: str, pretrained: bool, **kwargs) -> nn.Module:
        net = real_create(name.split(".")[0], pretrained=False, **kwargs)
        if pretrained:
            requested.append(name)
            with torch.no_grad():
                for tensor in net.state_dict().values():
                    tensor.fill_(0.5) if tensor.is_floating_point() else tensor.fill_(7)
        return net

    monkeypatch.setattr(hrnet_module, "create_timm_model", fake_imagenet)
    model = HRNetModel(**H18S, pretrained=True, **ITER_M)
    assert requested == ["hrnet_w18_small_v2.ms_in1k"]
    state = model.state_dict()
    backbone = model.feature_extractor.backbone_state_keys()
    assert len(backbone) == 864  # reference §1.8: all backbone tensors exist in timm
    assert all(torch.all(state[f"feature_extractor.{k}"] == (0.5 if "num_batches" not in k else 7)) for k in backbone)
    for name in ("feature_extractor.aux_head.0.weight", "feature_extractor.cls_head.weight", "maps_transform.2.weight"):
        assert not torch.all(state[name] == 0.5), name
    assert torch.all(state["feature_extractor.conv3x3_ocr.0.bias"] == 0)
