"""FCFI networks: the official checkpoints (stand-ins) reproduce the reference outputs through
load_model; FFCM's soft training window follows the formula; keys, counts, lr multipliers and
cross-architecture errors."""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from iseg.device_paths import accelerator_paths
from iseg.models.checkpoints import CheckpointError, describe_architecture, load_model
from iseg.models.fcfi import FCFIDeeplabModel, FCFIHRNetModel
from iseg.models.fcfi.ffcm import FocusedCorrectionModule
from iseg.models.fcfi.inputs import FCFIInputs
from tests.golden import load_io, load_spec, make_official_checkpoint, official_config

VARIANTS = {"fcfi_hrnet18s": FCFIHRNetModel, "fcfi_resnet101": FCFIDeeplabModel}
FCFI_PARAMS = ("mid_ch", "update_num", "expansion_ratio", "num_classes")
FCFI_PREFIXES = (
    "feature_extractor.correction_module.",
    "feature_extractor.fusion_module.",
    "feature_extractor.feedback_fusion.",
)
ITER_M = dict(use_rgb_conv=False, use_disks=True, norm_radius=5, use_leaky_relu=True, with_prev_mask=True)


@pytest.fixture(scope="module")
def official_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Stand-ins for FCFI's released model_h18s.pth / model_r101.pth, written once."""
    folder = tmp_path_factory.mktemp("fcfi_official")
    return {variant: make_official_checkpoint(load_spec(variant), folder / f"{variant}.pth") for variant in VARIANTS}


@pytest.fixture(scope="module")
def official_models(official_files: dict[str, Path]) -> dict[str, nn.Module]:
    return {variant: load_model(path) for variant, path in official_files.items()}


def _reference_calls(model: nn.Module, io: dict[str, np.ndarray]) -> dict[str, dict[str, torch.Tensor]]:
    image, prev_mask = torch.from_numpy(io["image"]), torch.from_numpy(io["prev_mask"])
    with torch.no_grad():
        gate0 = model(
            torch.cat([image, torch.zeros_like(prev_mask)], dim=1),
            torch.from_numpy(io["points_first"]),
            torch.from_numpy(io["new_point_first"]),
            0.0,
        )
        gate1 = model(
            torch.cat([image, prev_mask], dim=1),
            torch.from_numpy(io["points"]),
            torch.from_numpy(io["new_point_last"]),
            1.0,
        )
    return {"gate0": gate0, "gate1": gate1}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_official_checkpoint_reproduces_reference_outputs(variant: str, official_models: dict[str, nn.Module]) -> None:
    """Golden README tolerances: logits 1e-4 * max|ref| + 1e-5, feedback maps 2e-3, click maps exact."""
    model, io = official_models[variant], load_io(variant)
    assert type(model) is VARIANTS[variant] and not model.training and isinstance(model.default_inputs(), FCFIInputs)
    outputs = _reference_calls(model, io)
    assert "valid_masks" not in outputs["gate0"]  # eval mode -> inference (hard window) path
    compared = 0
    for gate, out in outputs.items():
        assert torch.equal(out["coord_features"], torch.from_numpy(io[f"coord_features_{gate}"]))
        for key in ("instances", "instances_aux", "updated_feedback1", "updated_feedback2"):
            if f"{key}_{gate}" not in io:
                assert key not in out
                continue
            ref = torch.from_numpy(io[f"{key}_{gate}"])
            assert isinstance(out[key], torch.Tensor) and out[key].shape == ref.shape, key
            tolerance = 2e-3 if key.startswith("updated_feedback") else 1e-4 * ref.abs().max().item() + 1e-5
            worst = (out[key] - ref).abs().max().item()
            assert worst <= tolerance, f"{key}_{gate}: max |diff| {worst:.3g} > {tolerance:.3g}"
            compared += 1
    assert compared == (8 if variant == "fcfi_hrnet18s" else 6)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_keys_shapes_and_parameter_counts(variant: str, official_models: dict[str, nn.Module]) -> None:
    spec, model = load_spec(variant), official_models[variant]
    ours = [(name, list(t.shape)) for name, t in model.state_dict().items()]
    assert ours == [(name, shape) for name, shape, *_ in spec["tensors"]]
    assert sum(p.numel() for p in model.parameters()) == spec["num_parameters"]
    expected = {"fcfi_hrnet18s": (1961, 10_156_998), "fcfi_resnet101": (781, 58_540_599)}[variant]
    assert (len(ours), spec["num_parameters"]) == expected
    state = model.state_dict()
    for name, _, _, total, abs_total in spec["tensors"][:: max(1, len(spec["tensors"]) // 30)]:
        assert state[name].double().sum().item() == pytest.approx(total, rel=1e-6, abs=1e-6), name
        assert state[name].double().abs().sum().item() == pytest.approx(abs_total, rel=1e-6, abs=1e-6), name


def test_h18s_file_is_w18_full_without_fuse_relu(official_models: dict[str, nn.Module]) -> None:
    """FCFI's "h18s" config says small=False; its HRNet has no ReLU after the fuses (spec §3.1)."""
    extractor = official_models["fcfi_hrnet18s"].feature_extractor
    assert not extractor.small and extractor.width == 18 and extractor.ocr_width == 48
    fuses = [module for stage in (extractor.stage2, extractor.stage3, extractor.stage4) for module in stage]
    assert len(fuses) == 8 and all(isinstance(module.fuse_act, nn.Identity) for module in fuses)
    assert extractor.correction_module.expansion_ratio == 0.3 and extractor.fusion_module.update_num == 1
    deeplab = official_models["fcfi_resnet101"]
    assert deeplab.coord_feature_ch == 2 and deeplab.with_prev_mask  # prev mask only as feedback
    assert deeplab.maps_transform[0].in_channels == 2


def _reference_window(box: tuple[int, int, int, int], grid_h: int, grid_w: int) -> torch.Tensor:
    """The soft window written cell by cell from the formula in spec §3.3."""

    def s(t: float) -> float:
        return 1.0 / (1.0 + math.exp(-10.0 * t))

    y0, x0, y1, x1 = box
    return torch.tensor(
        [[(s(r - y0) - s(r - y1)) * (s(c - x0) - s(c - x1)) for c in range(grid_w)] for r in range(grid_h)]
    )


@pytest.mark.parametrize(
    ("click", "box", "ones"),
    [
        # H, W = 40, 56 -> grid 10 x 14; ratio 0.3: half window int(6 + .5) = 6 rows, int(8.4 + .5) = 8 cols.
        # Input box [15, 22, 27, 38] -> floor/ceil on the grid; the window is exactly 1.0 (float32) only
        # two cells or more inside every edge.
        ((21, 30, 1), (3, 5, 7, 10), (5, 7, 6, 9)),
        ((2, 53, 0), (0, 11, 2, 14), None),  # clipped at the top-right corner ([0, 45, 8, 56]): never 1.0
    ],
)
def test_ffcm_soft_window_training_path_follows_the_formula(
    click: tuple[int, int, int], box: tuple[int, int, int, int], ones: tuple[int, int, int, int] | None
) -> None:
    torch.manual_seed(0)
    ffcm = FocusedCorrectionModule(in_ch=5, mid_ch=8, aux_ch=3 + 2 + 1, expansion_ratio=0.3).eval()
    images, clicks = torch.randn(1, 3, 40, 56), (torch.rand(1, 2, 40, 56) > 0.8).float()
    features, feedback = torch.randn(1, 5, 10, 14), torch.rand(1, 1, 40, 56)
    new_points = torch.tensor([[click]])
    with torch.no_grad():
        corrected, window = ffcm(images, clicks, features, feedback, new_points, soft=True)
        hard, no_window = ffcm(images, clicks, features, feedback, new_points, soft=False)
        small = [
            F.interpolate(t, size=(10, 14), mode="bilinear", align_corners=True) for t in (images, clicks, feedback)
        ]
        embeddings = ffcm.info_encoder(torch.cat([*small, features], dim=1))[0]
    cell = (int(click[0] * 10 / 40), int(click[1] * 14 / 56))  # truncated, as the reference resizes clicks
    unit = embeddings / embeddings.norm(dim=0, keepdim=True)
    affinity = (unit * unit[:, cell[0], cell[1], None, None]).sum(dim=0)
    label, prev = float(click[2]), small[2][0, 0]
    expected_window = _reference_window(box, 10, 14)
    torch.testing.assert_close(window[0, 0], expected_window, rtol=0, atol=1e-6)
    moved = affinity * label + (1 - affinity) * prev
    expected = (1 - expected_window) * prev + expected_window * moved
    torch.testing.assert_close(corrected[0, 0], expected, rtol=0, atol=1e-5)
    # inference: the same correction inside the hard box, the feedback untouched outside
    inside = torch.zeros(10, 14, dtype=torch.bool)
    inside[box[0] : box[2], box[1] : box[3]] = True
    assert no_window is None
    expected = (1 - affinity) * prev + affinity * label
    torch.testing.assert_close(hard[0, 0][inside], expected[inside], rtol=0, atol=1e-5)
    assert torch.equal(hard[0, 0][~inside], prev[~inside])
    # the feedback loss keeps only the cells where the window is exactly 1.0
    exact_ones = torch.zeros(10, 14, dtype=torch.bool)
    if ones is not None:
        exact_ones[ones[0] : ones[2], ones[1] : ones[3]] = True
    assert torch.equal(window[0, 0] == 1.0, exact_ones)


@pytest.fixture(scope="module")
def small_hrnet() -> FCFIHRNetModel:
    torch.manual_seed(0)
    return FCFIHRNetModel(
        width=18, ocr_width=48, small=True, mid_ch=16, expansion_ratio=0.3, with_aux_output=True, **ITER_M
    )


def test_training_path_returns_the_window_at_feature_resolution(small_hrnet: FCFIHRNetModel) -> None:
    image = torch.rand(2, 4, 64, 96, generator=torch.Generator().manual_seed(0))
    points = torch.tensor([[[30.0, 40.0, 0.0], [-1.0, -1.0, -1.0]], [[10.0, 90.0, 0.0], [50.0, 5.0, 1.0]]])
    new_points = torch.tensor([[[30, 40, 1]], [[50, 5, 0]]])
    small_hrnet.train()
    try:
        train_out = small_hrnet(image, points, new_points, 1.0)  # is_training=None follows .training
    finally:
        small_hrnet.eval()
    with torch.no_grad():
        eval_out = small_hrnet(image, points, new_points, 1.0)
        forced = small_hrnet(image, points, new_points, 1.0, is_training=True)
    assert train_out["valid_masks"].shape == forced["valid_masks"].shape == (2, 1, 16, 24)
    assert "valid_masks" not in eval_out
    for out in (train_out, eval_out):
        assert out["instances"].shape == out["instances_aux"].shape == (2, 1, 64, 96)
        assert out["updated_feedback1"].shape == out["updated_feedback2"].shape == (2, 1, 64, 96)
        assert out["coord_features"].shape == (2, 3, 64, 96)
    assert 0 <= float(eval_out["updated_feedback1"].min()) and float(eval_out["updated_feedback1"].max()) <= 1
    assert not torch.allclose(forced["updated_feedback1"], eval_out["updated_feedback1"])  # soft vs hard window


def test_gate_switches_the_cffm_residual(small_hrnet: FCFIHRNetModel) -> None:
    image = torch.rand(2, 4, 64, 96, generator=torch.Generator().manual_seed(1))
    points = torch.tensor([[[30.0, 40.0, 0.0], [-1.0, -1.0, -1.0]], [[10.0, 90.0, 0.0], [50.0, 5.0, 1.0]]])
    new_points = torch.tensor([[[30, 40, 1]], [[50, 5, 0]]])
    with torch.no_grad():
        as_float = small_hrnet(image, points, new_points, 1.0)
        as_tensor = small_hrnet(image, points, new_points, torch.tensor(1.0))
        closed = small_hrnet(image, points, new_points, 0.0)
    assert torch.equal(as_float["instances"], as_tensor["instances"])
    assert (closed["instances"] - as_float["instances"]).abs().max() > 1.0
    # the gate acts after both feedback maps are made
    assert torch.equal(closed["updated_feedback1"], as_float["updated_feedback1"])
    assert torch.equal(closed["updated_feedback2"], as_float["updated_feedback2"])


def test_lr_multipliers_cover_the_feedback_modules(small_hrnet: FCFIHRNetModel) -> None:
    """HRNet: all of feature_extractor incl. FFCM/CFFM at backbone_lr_mult except the OCR parts;
    DeepLab: only the backbone (spec §1.7, from the reference's LRMult calls)."""
    mults = small_hrnet.lr_multipliers()
    assert set(mults) == {name for name, _ in small_hrnet.named_parameters()}
    fcfi = {name: m for name, m in mults.items() if name.startswith(FCFI_PREFIXES)}
    assert len(fcfi) == 42 and set(fcfi.values()) == {0.1}
    assert mults["feature_extractor.conv3x3_ocr.0.weight"] == 1.0 and mults["maps_transform.0.weight"] == 1.0
    torch.manual_seed(0)
    deeplab = FCFIDeeplabModel(backbone="resnet34", deeplab_ch=32, mid_ch=8, aspp_dropout=0.2, **ITER_M)
    mults = deeplab.lr_multipliers()
    assert set(mults) == {name for name, _ in deeplab.named_parameters()}
    assert {m for name, m in mults.items() if name.startswith(FCFI_PREFIXES)} == {1.0}
    assert {m for name, m in mults.items() if name.startswith("feature_extractor.backbone.")} == {0.1}


def test_bad_arguments_and_inputs_are_named(small_hrnet: FCFIHRNetModel) -> None:
    with pytest.raises(ValueError, match="with_prev_mask=True"):
        FCFIHRNetModel(width=18, ocr_width=48, small=True)
    with pytest.raises(ValueError, match="with_prev_mask=True"):
        FCFIDeeplabModel(backbone="resnet34", deeplab_ch=32)
    with pytest.raises(ValueError, match="num_classes must be 1, got 2"):
        FCFIHRNetModel(width=18, ocr_width=48, small=True, num_classes=2, **ITER_M)
    image, points = torch.rand(1, 4, 32, 48), torch.tensor([[[5.0, 5.0, 0.0], [-1.0, -1.0, -1.0]]])
    with pytest.raises(ValueError, match=r"new_points must have shape \(B, 1, 3\).*\(1, 3\)"):
        small_hrnet(image, points, torch.tensor([[5, 5, 1]]), 0.0)
    with pytest.raises(ValueError, match=r"\[\[40, 5, 1\]\] lie outside the 32x48 input"):
        small_hrnet(image, points, torch.tensor([[[40, 5, 1]]]), 0.0)


# ---------------------------------------------------------------------------------------------
# checkpoint formats


def _without_fcfi(state: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((k, v) for k, v in state.items() if not k.startswith(FCFI_PREFIXES))


def _ritm_config(variant: str) -> dict:
    """The FCFI file's config with the FCFI-only params removed: what RITM would write for this network."""
    config = official_config(load_spec(variant))
    config["params"] = {k: v for k, v in config["params"].items() if k not in FCFI_PARAMS}
    return config


def test_fcfi_weights_in_a_ritm_container_name_the_architecture(official_models: dict[str, nn.Module]) -> None:
    state = official_models["fcfi_hrnet18s"].state_dict()
    with pytest.raises(CheckpointError) as info:
        load_model({"state_dict": state, "config": _ritm_config("fcfi_hrnet18s")})
    message = str(info.value)
    assert "(ritm checkpoint)" in message and "does not fit HRNetModel [HRNet-W18, OCR 48, Conv1S" in message
    held = "the file seems to hold [HRNet-W18, OCR 48, FCFI feedback modules, Conv1S click fusion of 3 maps, 1961"
    assert held in message
    assert "unexpected keys (66)" in message and "missing keys" not in message


def test_ritm_weights_in_an_fcfi_container_name_the_architecture(official_models: dict[str, nn.Module]) -> None:
    state = _without_fcfi(official_models["fcfi_hrnet18s"].state_dict())
    with pytest.raises(CheckpointError) as info:
        load_model({"state_dict": state, "config": official_config(load_spec("fcfi_hrnet18s"))})
    message = str(info.value)
    assert "(fcfi checkpoint)" in message and "FCFIHRNetModel [HRNet-W18, OCR 48, FCFI feedback modules" in message
    assert "the file seems to hold [HRNet-W18, OCR 48, Conv1S click fusion of 3 maps, 1895 tensors]" in message
    assert "missing keys (66)" in message and "unexpected keys" not in message


def test_deeplab_fcfi_weights_are_recognised(official_models: dict[str, nn.Module]) -> None:
    state = official_models["fcfi_resnet101"].state_dict()
    described = describe_architecture(state)
    assert described == (
        "DeepLabV3+ ResNet-101, ASPP 256 ch, FCFI feedback modules, Conv1S click fusion of 2 maps, 781 tensors"
    )
    cffm_only = {k: v for k, v in state.items() if not k.startswith("feature_extractor.correction_module.")}
    assert "FCFI feedback modules" in describe_architecture(cffm_only)
    assert "FCFI" not in describe_architecture(_without_fcfi(state))
    wrong = r"DeeplabModel \[DeepLabV3\+ ResNet-101.*seems to hold \[.*FCFI feedback"
    with pytest.raises(CheckpointError, match=wrong):
        load_model({"state_dict": state, "config": _ritm_config("fcfi_resnet101")})


def test_fcfi_config_with_an_unknown_class_is_named() -> None:
    config = official_config(load_spec("fcfi_hrnet18s"))
    config["class"] = "isegm.model.is_segformer_model.SegformerModel"
    with pytest.raises(CheckpointError, match=r"\(fcfi checkpoint\): config.class 'isegm.model.is_segformer"):
        load_model({"state_dict": {}, "config": config})


def _lightning(net: nn.Module, net_config: dict) -> dict:
    state = OrderedDict((f"net.{k}", v) for k, v in net.state_dict().items())
    return {"state_dict": state, "hyper_parameters": OmegaConf.create({"net": net_config})}


def test_lightning_checkpoints_of_fcfi_nets(small_hrnet: FCFIHRNetModel, tmp_path: Path) -> None:
    config = {
        "_target_": "iseg.models.fcfi.hrnet_model.FCFIHRNetModel",
        "width": 18,
        "ocr_width": 48,
        "small": True,
        "mid_ch": 16,
        "expansion_ratio": 0.3,
        "with_aux_output": True,
        **ITER_M,
    }
    path = tmp_path / "fcfi.ckpt"
    torch.save(_lightning(small_hrnet, config), path)
    loaded = load_model(path)
    assert type(loaded) is FCFIHRNetModel
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), small_hrnet.state_dict().values()))
    ritm_config = config | {"_target_": "iseg.models.hrnet_model.HRNetModel"}
    for key in FCFI_PARAMS:
        ritm_config.pop(key, None)
    wrong = r"\(lightning checkpoint\).*HRNetModel \[HRNet-W18-small.*seems to hold \[.*FCFI"
    with pytest.raises(CheckpointError, match=wrong):
        load_model(_lightning(small_hrnet, ritm_config))
    assert isinstance(loaded.default_inputs(), FCFIInputs)


@pytest.mark.slow
def test_training_forward_traces_in_one_graph_on_the_accelerator_path(small_hrnet: FCFIHRNetModel) -> None:
    """No host read in the FCFI forward where a GPU runs it: the new-click check is a device assert,
    so torch.compile sees one graph (the host path reads the check, to name the points at fault)."""
    image = torch.rand(2, 4, 64, 96, generator=torch.Generator().manual_seed(1))
    points = torch.tensor([[[30.0, 40.0, 0.0], [-1.0, -1.0, -1.0]], [[10.0, 90.0, 0.0], [50.0, 5.0, 1.0]]])
    new_points = torch.tensor([[[30, 40, 1]], [[-1, -1, -1]]])
    torch._dynamo.reset()
    with accelerator_paths():
        explanation = torch._dynamo.explain(small_hrnet)(image, points, new_points, 1.0, is_training=True)
        with pytest.raises(RuntimeError, match=r"new_points \(y, x, label\) lie outside the 64x96 input"):
            small_hrnet(image, points, torch.tensor([[[30, 40, 1]], [[70, 5, 0]]]), 1.0)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
