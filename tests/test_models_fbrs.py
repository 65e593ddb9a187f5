"""f-BRS networks: the official bare-state-dict checkpoints (stand-ins) reproduce the reference
outputs through load_model; the architecture is inferred from the keys as f-BRS's loader does;
broken files are refused with a diagnosis; lr multipliers; the training configs run end to end."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from iseg.interaction.prompts import Click
from iseg.models.checkpoints import CheckpointError, FbrsStateDictFormat, load_model
from iseg.models.fbrs import FBRSDeeplabModel, FBRSHRNetModel
from iseg.models.inputs import ClickInputs
from tests.conftest import compose_train_config
from tests.golden import fill_rule_state_dict, load_io, load_spec

VARIANTS = {"fbrs_hrnet18_ocr64": FBRSHRNetModel, "fbrs_resnet34_dh128": FBRSDeeplabModel}
EXPECTED_ARCHITECTURE = {
    "fbrs_hrnet18_ocr64": ("FBRSHRNetModel", {"width": 18, "ocr_width": 64, "small": False}),
    "fbrs_resnet34_dh128": ("FBRSDeeplabModel", {"backbone": "resnet34", "deeplab_ch": 128, "aspp_dropout": 0.2}),
}


def write_official_checkpoint(spec: dict, path: Path) -> Path:
    """The stand-in for the released file: ``torch.save(OrderedDict name -> tensor)``, the spec's
    ``official_checkpoint`` container (the ResNet file has no num_batches_tracked buffers)."""
    assert spec["official_checkpoint"]["container"].startswith("plain state dict")
    torch.save(fill_rule_state_dict(spec), path)
    return path


@pytest.fixture(scope="module")
def official_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fbrs_official")
    return {variant: write_official_checkpoint(load_spec(variant), folder / f"{variant}.pth") for variant in VARIANTS}


@pytest.fixture(scope="module")
def official_models(official_files: dict[str, Path]) -> dict[str, nn.Module]:
    return {variant: load_model(path) for variant, path in official_files.items()}


def _assert_close(actual: torch.Tensor, reference: np.ndarray, name: str) -> None:
    """Golden README tolerance for logits: |a - ref| <= 1e-4 * max|ref| + 1e-5."""
    ref = torch.from_numpy(reference)
    assert actual.shape == ref.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(ref.shape)}"
    tolerance = 1e-4 * ref.abs().max().item() + 1e-5
    worst = (actual - ref).abs().max().item()
    assert worst <= tolerance, f"{name}: max |diff| {worst:.3g} > {tolerance:.3g}"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_official_checkpoint_reproduces_reference_outputs(variant: str, official_models: dict[str, nn.Module]) -> None:
    model, io = official_models[variant], load_io(variant)
    assert type(model) is VARIANTS[variant] and not model.training and not model.with_aux_output
    inputs = model.default_inputs()
    assert type(inputs) is ClickInputs and inputs.prev_mask is False
    image, points = torch.from_numpy(io["image"]), torch.from_numpy(io["points_yx"])
    # iseg networks normalise inside; f-BRS's dataset does it outside with the same float32 arithmetic
    normalized = model.normalization(image)
    assert torch.equal(normalized, torch.from_numpy(io["image_normalized"]))
    with torch.no_grad():
        coord_features = model.get_coord_features(normalized, None, points)
        out = model(image, points)
    assert torch.allclose(coord_features, torch.from_numpy(io["coord_features"]), rtol=0, atol=1e-6)
    _assert_close(out["instances"], io["instances"], "instances")
    assert set(out) == {"instances"}  # built as the reference evaluates it: no aux output

    # the same clicks as a click list through the network's adapter ((B, 2N, 3) rows with order)
    clicks = [Click(float(y), float(x), bool(positive)) for y, x, positive in io["clicks"]]
    prompts = inputs.encode([clicks], "cpu")
    with torch.no_grad():
        adapted = model(**inputs(image, torch.zeros_like(image[:, :1]), prompts, step=len(clicks) - 1))
    _assert_close(adapted["instances"], io["instances"], "instances (adapter)")

    if "instances_aux" in io:  # the training build has the aux output; same weights
        model.with_aux_output = True
        try:
            with torch.no_grad():
                aux = model(image, points)["instances_aux"]
        finally:
            model.with_aux_output = False
        _assert_close(aux, io["instances_aux"], "instances_aux")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_keys_shapes_values_and_parameter_counts(variant: str, official_models: dict[str, nn.Module]) -> None:
    spec, model = load_spec(variant), official_models[variant]
    ours = [(name, list(t.shape)) for name, t in model.state_dict().items()]
    official = [(name, shape) for name, shape, *_ in spec["tensors"]]
    # the converted ResNet files lack the BN counters; the network has them (set to 0 on loading)
    assert [item for item in ours if item[0] in dict(official)] == official
    counters = [name for name, _ in ours if name not in dict(official)]
    assert all(name.endswith("num_batches_tracked") for name in counters)
    expected_counts = {"fbrs_hrnet18_ocr64": (1899, 1899), "fbrs_resnet34_dh128": (299, 251)}
    assert (len(ours), len(official)) == expected_counts[variant]
    assert sum(p.numel() for p in model.parameters()) == spec["num_parameters"]
    state = model.state_dict()
    assert all(state[name].item() == 0 and state[name].device.type == "cpu" for name in counters)
    for name, _, _, total, abs_total in spec["tensors"][:: max(1, len(spec["tensors"]) // 40)]:
        assert state[name].double().sum().item() == pytest.approx(total, rel=1e-6, abs=1e-6), name
        assert state[name].double().abs().sum().item() == pytest.approx(abs_total, rel=1e-6, abs=1e-6), name
    assert [type(m) for m in model.rgb_conv] == [nn.Conv2d, nn.LeakyReLU, nn.BatchNorm2d, nn.Conv2d]
    assert model.rgb_conv[1].negative_slope == 0.2


def _meta_state(cls: type[nn.Module], **kwargs) -> OrderedDict[str, torch.Tensor]:
    """The state dict of a network built on the meta device (names and shapes, no memory)."""
    with torch.device("meta"):
        return cls(**kwargs).state_dict()


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (FBRSHRNetModel, {"width": 32, "ocr_width": 128, "small": False}),
        (FBRSHRNetModel, {"width": 18, "ocr_width": 48, "small": True}),
        (FBRSDeeplabModel, {"backbone": "resnet50", "deeplab_ch": 128, "aspp_dropout": 0.2}),
        (FBRSDeeplabModel, {"backbone": "resnet101", "deeplab_ch": 256, "aspp_dropout": 0.5}),
    ],
    ids=["hrnet32_ocr128", "hrnet18s_ocr48", "resnet50_dh128", "resnet101_dh256"],
)
def test_architecture_is_inferred_from_the_keys(cls: type[nn.Module], kwargs: dict) -> None:
    """Every released layout (and W18-small); ResNets with and without the BN counters (the released
    ResNet files were converted from MXNet and have none; HRNet files, saved by PyTorch, have them,
    and f-BRS's small-HRNet rule counts them: fewer than 1800 feature_extractor keys)."""
    state = _meta_state(cls, **kwargs)
    fmt = FbrsStateDictFormat()
    assert fmt.matches(state)
    assert fmt.architecture(state) == (cls.__name__, kwargs)
    if cls is FBRSDeeplabModel:
        without_counters = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        assert fmt.architecture(without_counters) == (cls.__name__, kwargs)


def test_golden_files_infer_their_architecture(official_files: dict[str, Path]) -> None:
    fmt = FbrsStateDictFormat()
    for variant, path in official_files.items():
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: no code unpickled
        assert fmt.matches(state)
        assert fmt.architecture(state) == EXPECTED_ARCHITECTURE[variant]


def test_aspp_dropout_entry_and_bn_counters(official_files: dict[str, Path], tmp_path: Path) -> None:
    """An ``aspp_dropout`` entry overrides the default; a ResNet file with counters loads too."""
    state = torch.load(official_files["fbrs_resnet34_dh128"], weights_only=True)
    state["aspp_dropout"] = torch.tensor(0.35)
    assert FbrsStateDictFormat().architecture(state)[1]["aspp_dropout"] == pytest.approx(0.35)
    model = load_model(state)
    assert isinstance(model, FBRSDeeplabModel)
    assert model.feature_extractor.aspp.project[-1].p == pytest.approx(0.35)
    counted = model.state_dict()
    assert "feature_extractor.backbone.bn1.num_batches_tracked" in counted
    path = tmp_path / "with_counters.pth"
    torch.save(counted, path)
    again = load_model(path)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), counted.values()))


def test_broken_files_are_refused_with_a_diagnosis(official_files: dict[str, Path], tmp_path: Path) -> None:
    state = torch.load(official_files["fbrs_resnet34_dh128"], weights_only=True)
    state.pop("head.layers.2.weight")
    state["rgb_conv.0.weight"] = torch.zeros(8, 6, 1, 1)
    path = tmp_path / "broken_r34.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert f"{path} (fbrs checkpoint)" in message
    assert "FBRSDeeplabModel [DeepLabV3+ ResNet-34, ASPP 128 ch" in message
    assert "missing keys (1): [head.layers.2.weight]" in message
    assert "rgb_conv.0.weight: expected (8, 5, 1, 1), found (8, 6, 1, 1)" in message


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (
            {"rgb_conv.0.weight": (8, 5, 1, 1), "feature_extractor.stage2.0.branches.0.0.conv1.weight": (18, 18, 3, 3)},
            r"f-BRS architecture inference needs tensor "
            r"'feature_extractor\.ocr_distri_head\.object_context_block\.f_down\.1\.0\.bias'",
        ),
        (
            {"rgb_conv.0.weight": (8, 5, 1, 1), **{f"feature_extractor.backbone.t{i}": (1,) for i in range(600)}},
            r"600 ResNet backbone tensors: more than any f-BRS backbone has \(resnet34 <= 181",
        ),
        (
            {"rgb_conv.0.weight": (8, 5, 1, 1), "feature_extractor.decoder.weight": (1,)},
            r"neither an f-BRS HRNet .* nor an f-BRS DeepLab .*top-level modules \[feature_extractor, rgb_conv\]",
        ),
        (  # a RITM state dict without its config container
            {
                "maps_transform.0.weight": (16, 3, 1, 1),
                "feature_extractor.stage2.0.branches.0.0.conv1.weight": (18, 18, 3, 3),
            },
            r"no rgb_conv\.\* tensors: .*HRNet-W18-small, no OCR, Conv1S click fusion of 3 maps.*'config'\} container",
        ),
    ],
    ids=["hrnet_without_ocr_key", "too_many_backbone_tensors", "unknown_network", "ritm_state_dict"],
)
def test_unrecognised_state_dicts_are_named(state: dict, message: str) -> None:
    obj = {key: torch.zeros(shape) for key, shape in state.items()}
    with pytest.raises(CheckpointError, match=r"<in-memory checkpoint> \(fbrs checkpoint\): " + message):
        load_model(obj)


def test_plain_state_dicts_of_other_networks_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "some_net.pth"
    torch.save(OrderedDict([("conv.weight", torch.zeros(2, 3, 1, 1)), ("conv.bias", torch.zeros(2))]), path)
    expected = rf"{path}: not a known checkpoint format \(known: .*'fbrs'.*\[conv.weight, conv.bias\]"
    with pytest.raises(CheckpointError, match=expected):
        load_model(path)
    assert not FbrsStateDictFormat().matches({"state_dict": {"rgb_conv.0.weight": torch.zeros(1)}, "epoch": 3})


def test_lr_multipliers_follow_fbrs(official_models: dict[str, nn.Module]) -> None:
    """f-BRS: rgb_conv, aux_head, cls_head, conv3x3_ocr, ocr_distri_head (HRNet) / all but the
    ResNet (DeepLab) at the full rate; the rest at backbone_lr_mult."""
    hrnet = official_models["fbrs_hrnet18_ocr64"].lr_multipliers()
    full = ("rgb_conv", "aux_head", "cls_head", "conv3x3_ocr", "ocr_distri_head")
    assert set(hrnet) == {name for name, _ in official_models["fbrs_hrnet18_ocr64"].named_parameters()}
    for name, mult in hrnet.items():
        assert mult == (1.0 if any(word in name for word in full) else 0.1), name
    deeplab = official_models["fbrs_resnet34_dh128"].lr_multipliers()
    for name, mult in deeplab.items():
        assert mult == (0.1 if "backbone" in name else 1.0), name


@pytest.mark.parametrize("option", [{"with_prev_mask": True}, {"use_disks": True}, {"use_rgb_conv": False}])
def test_fbrs_options_cannot_be_changed(option: dict) -> None:
    for cls in (FBRSHRNetModel, FBRSDeeplabModel):
        with pytest.raises(ValueError, match=rf"{cls.__name__} is an f-BRS network .* got {next(iter(option))}="):
            cls(**option)


# ------------------------------------------------------------------ training (slow)


def _write_data(data: str, root: Path) -> list[str]:
    if data == "sbd":
        from tests.sbd_files import write_sbd_dataset

        write_sbd_dataset(root, num_train=4, num_val=2, image_size=(64, 96))
        return ["data=sbd", f"data.root={root}", "data.val_dataset.epoch_len=2"]
    return ["data.train_dataset.source.image_size=[64,96]", "data.val_dataset.source.image_size=[64,96]",
            "data.val_dataset.source.num_samples=2"]


@pytest.mark.slow
@pytest.mark.parametrize("data", ["synthetic", "sbd"])
@pytest.mark.parametrize("model", ["fbrs_hrnet18_ocr64", "fbrs_resnet34"])
def test_fbrs_models_fast_dev_run(model: str, data: str, tmp_path: Path) -> None:
    """One training and one validation batch with f-BRS's sampler settings, then the 2-click protocol."""
    from iseg.training.run import train

    overrides = [
        f"model={model}", *_write_data(data, tmp_path / data), "data.batch_size=2", "data.num_workers=0",
        "data.persistent_workers=false",
        "data.train_dataset.augmentation.crop_size=[64,96]", "data.val_dataset.augmentation.crop_size=[64,96]",
        "data.train_dataset.sampler.max_num_points=10", "data.train_dataset.sampler.prob_gamma=0.7",
        "model.protocol_samples=1", "model.protocol.max_clicks=2", "trainer.fast_dev_run=true",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "validate_before_training=false",
        "~callbacks.model_summary",
    ]
    cfg = compose_train_config(tmp_path / "run", overrides, tiny=False)
    assert cfg.model.max_num_next_clicks == 0 and cfg.model.net.norm_radius == 260
    # the synthetic set trains from scratch with recipe/synthetic.yaml's schedule
    assert list(cfg.model.scheduler.milestones) == ([4] if data == "synthetic" else [100])
    assert (cfg.model.losses.aux is None) == (model == "fbrs_resnet34")
    noc90 = train(cfg)
    assert 1.0 <= noc90 <= 2.0


@pytest.mark.parametrize("experiment", ["fbrs_hrnet18_ocr64_sbd", "fbrs_resnet34_sbd"])
def test_paper_presets_compose(experiment: str, tmp_path: Path) -> None:
    cfg = compose_train_config(tmp_path, [f"experiment={experiment}"], tiny=False)
    assert cfg.trainer.max_epochs == 120 and list(cfg.model.scheduler.milestones) == [100]
    assert cfg.model.max_num_next_clicks == 0 and cfg.model.optimizer.lr == 5e-4
    assert cfg.model.net.pretrained is True and cfg.model.net.backbone_lr_mult == 0.1
    assert cfg.data.batch_size == (32 if "hrnet" in experiment else 28)
    for dataset in (cfg.data.train_dataset, cfg.data.val_dataset):
        assert dataset.sampler.max_num_points == 10 and dataset.sampler.prob_gamma == 0.7
        assert dataset.min_object_area == 80
    assert cfg.data.train_dataset.keep_background_prob == 0.0
    assert cfg.data.train_dataset.source.samples_weights_gamma == 1.25
    assert cfg.data.train_dataset.augmentation._target_.endswith("sbd_train_augmentator")
