"""Load trained models from official checkpoints of the reference papers and from iseg's own.

Checkpoint layouts differ by project (RITM/FCFI: ``{'state_dict', 'config'}``; f-BRS: a bare
state dict; Lightning: ``{'state_dict', 'hyper_parameters', ...}``), so each layout is a small
*format* object in a registry: ``matches(obj)`` recognises the loaded file, ``build(obj)``
rebuilds the network and loads its weights strictly. ``load_model`` tries them in order.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit the network it describes."""


class CheckpointFormat(Protocol):
    """One checkpoint layout: recognise a loaded object and build the network from it."""

    name: str

    def matches(self, obj: Any) -> bool: ...

    def build(self, obj: Any) -> nn.Module: ...


CHECKPOINT_FORMATS: list[CheckpointFormat] = []


def register_checkpoint_format(fmt: CheckpointFormat, before: str | None = None) -> CheckpointFormat:
    """Add a format to the registry; formats are tried in order, so a more specific layout
    (e.g. FCFI's variant of the RITM container) registers ``before`` the general one."""
    names = [existing.name for existing in CHECKPOINT_FORMATS]
    if fmt.name in names:
        raise ValueError(f"checkpoint format '{fmt.name}' is already registered")
    if before is not None and before not in names:
        raise ValueError(f"cannot register '{fmt.name}' before unknown format '{before}' (known: {names})")
    CHECKPOINT_FORMATS.insert(names.index(before) if before is not None else len(names), fmt)
    return fmt


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> Any:
    """torch.load with weights_only=True; full unpickling only for files that need it.

    Official checkpoints hold only tensors and plain values. Lightning checkpoints may hold
    OmegaConf configs, which the safe loader rejects; loading those runs code from the file,
    as any pickle does, so only load checkpoints you trust.
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.iterdir() if p.suffix in (".ckpt", ".pth", ".pt"))[:5]
        raise IsADirectoryError(
            f"checkpoint {path} is a directory, not a file" + (f"; it holds {', '.join(found)}" if found else "")
        )
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception:  # not loadable safely (or not a checkpoint at all): the full loader decides
        pass
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
        raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({reason})") from error


def load_model(path_or_obj: str | Path | Mapping, map_location: Any = "cpu") -> nn.Module:
    """Rebuild a network from a checkpoint file (or its loaded content) and return it in eval mode."""
    if isinstance(path_or_obj, (str, Path)):
        source, obj = str(path_or_obj), read_checkpoint(path_or_obj, map_location)
    else:
        source, obj = "<in-memory checkpoint>", path_or_obj
    for fmt in CHECKPOINT_FORMATS:
        if fmt.matches(obj):
            try:
                model = fmt.build(obj)
            except CheckpointError as error:
                raise CheckpointError(f"{source} ({fmt.name} checkpoint): {error}") from error
            if isinstance(map_location, (str, torch.device)):
                model = model.to(map_location)
            return model.eval()
    found = f"a dict with keys {_preview(list(obj))}" if isinstance(obj, Mapping) else f"a {type(obj).__name__}"
    raise CheckpointError(
        f"{source}: not a known checkpoint format (known: {[fmt.name for fmt in CHECKPOINT_FORMATS]}); found {found}"
    )


# ----------------------------------------------------------------------------------------------
# strict state-dict loading with a diagnosis


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, Any]) -> None:
    """Load all tensors or none; on mismatch say what differs and what the file seems to hold."""
    bad_values = [key for key, value in state_dict.items() if not isinstance(value, torch.Tensor)]
    if bad_values:
        raise CheckpointError(f"state dict entries that are not tensors: {_preview(bad_values)}")
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    shapes = [
        f"{key}: expected {tuple(expected[key].shape)}, found {tuple(state_dict[key].shape)}"
        for key in expected
        if key in state_dict and expected[key].shape != state_dict[key].shape
    ]
    if missing or unexpected or shapes:
        lines = [
            f"state dict does not fit {type(model).__name__} [{describe_architecture(expected)}]; "
            f"the file seems to hold [{describe_architecture(state_dict)}]"
        ]
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if items:
                lines.append(f"{title} ({len(items)}): {_preview(items)}")
        raise CheckpointError("\n".join(lines))
    model.load_state_dict(state_dict, strict=True)


def describe_architecture(state_dict: Mapping[str, Any]) -> str:
    """Best guess of the network a state dict belongs to, from characteristic keys and shapes."""

    def shape(key: str) -> tuple[int, ...] | None:
        value = state_dict.get(key)
        return tuple(value.shape) if isinstance(value, torch.Tensor) else None

    parts = []
    if shape("feature_extractor.stage2.0.branches.0.0.conv1.weight"):
        width = shape("feature_extractor.stage2.0.branches.0.0.conv1.weight")[0]
        small = shape("feature_extractor.layer1.2.conv1.weight") is None
        parts.append(f"HRNet-W{width}{'-small' if small else ''}")
        key_width = shape("feature_extractor.ocr_distri_head.object_context_block.f_down.0.weight")
        parts.append(f"OCR {key_width[0]}" if key_width else "no OCR")
    elif shape("feature_extractor.backbone.conv1.weight") or shape("feature_extractor.backbone.conv1.0.weight"):
        depth = 1 + max(
            (int(k.split(".")[3]) for k in state_dict if k.startswith("feature_extractor.backbone.layer3.")),
            default=-1,
        )
        bottleneck = shape("feature_extractor.backbone.layer1.0.conv3.weight") is not None
        name = {6: "ResNet-50" if bottleneck else "ResNet-34", 23: "ResNet-101", 36: "ResNet-152"}
        parts.append(f"DeepLabV3+ {name.get(depth, f'ResNet ({depth} layer3 blocks)')}")
        aspp = shape("feature_extractor.aspp.project.0.weight")
        if aspp:
            parts.append(f"ASPP {aspp[0]} ch")
    elif shape("backbone.conv1.weight") and shape("classifier.aspp.project.0.weight"):
        parts.append(f"S2M-style DeepLabV3+ ResNet ({shape('backbone.conv1.weight')[1]} input channels)")
    elif shape("decoder.usr_encoder.conv1.weight"):
        in_ch = shape("encoder.conv1.weight")
        parts.append(f"Forte et al. ResNet-50 GN+WS ({in_ch[1] if in_ch else '?'} input channels) + user encoder")
    else:
        prefixes = sorted({key.split(".", 1)[0] for key in state_dict})
        parts.append(f"unrecognised network with top-level modules {_preview(prefixes)}")
    if any(key.startswith(_FCFI_KEY_PREFIXES) for key in state_dict):
        parts.append("FCFI feedback modules")
    if shape("maps_transform.0.weight"):
        parts.append(f"Conv1S click fusion of {shape('maps_transform.0.weight')[1]} maps")
    elif shape("maps_transform.weight"):
        parts.append(f"Conv1E click fusion of {shape('maps_transform.weight')[1]} maps")
    elif shape("rgb_conv.0.weight"):
        parts.append("DMF (rgb_conv) click fusion")
    parts.append(f"{len(state_dict)} tensors")
    return ", ".join(parts)


# FFCM (both variants), CFFM on HRNet, CFFM on DeepLab.
_FCFI_KEY_PREFIXES = (
    "feature_extractor.correction_module.",
    "feature_extractor.fusion_module.",
    "feature_extractor.feedback_fusion.",
)


def _preview(items: list, limit: int = 12) -> str:
    shown = ", ".join(str(item) for item in items[:limit])
    return f"[{shown}{f', ... {len(items) - limit} more' if len(items) > limit else ''}]"


# ----------------------------------------------------------------------------------------------
# RITM / FCFI container: {'state_dict': ..., 'config': {'class': ..., 'params': {...}}}

_OFFICIAL_CLASSES = {
    "isegm.model.is_hrnet_model.HRNetModel": ("iseg.models.hrnet_model", "HRNetModel"),
    "isegm.model.is_deeplab_model.DeeplabModel": ("iseg.models.deeplab_model", "DeeplabModel"),
}
# FCFI kept RITM's class names; its configs are told apart by the parameters of its feedback modules.
_FCFI_CLASSES = {
    "isegm.model.is_hrnet_model.HRNetModel": ("iseg.models.fcfi.hrnet_model", "FCFIHRNetModel"),
    "isegm.model.is_deeplab_model.DeeplabModel": ("iseg.models.fcfi.deeplab_model", "FCFIDeeplabModel"),
}
_FCFI_PARAMS = ("mid_ch", "update_num", "expansion_ratio")
# Values of 'class'-type params: an allow-list, never an import of a string from the file.
_OFFICIAL_PARAM_CLASSES: dict[str, type[nn.Module]] = {
    "torch.nn.modules.batchnorm.BatchNorm2d": nn.BatchNorm2d,
    "torch.nn.BatchNorm2d": nn.BatchNorm2d,
    "torch.nn.modules.batchnorm.SyncBatchNorm": nn.SyncBatchNorm,
    "torch.nn.SyncBatchNorm": nn.SyncBatchNorm,
}


def build_model_from_official_config(
    config: Mapping[str, Any], classes: Mapping[str, tuple[str, str]] = _OFFICIAL_CLASSES
) -> nn.Module:
    """Build the iseg network for a reference ``_config`` (``{'class', 'params'}``), untrained.

    ``classes`` maps the reference class names to iseg's (module, class). Params that the
    reference marked ``specified`` or whose value differs from our default are passed; a param
    our class does not accept is an error (it could change the network).
    """
    if not isinstance(config, Mapping) or "class" not in config or not isinstance(config.get("params"), Mapping):
        found = f"keys {_preview(list(config))}" if isinstance(config, Mapping) else f"a {type(config).__name__}"
        raise CheckpointError(f"config must be a dict with 'class' and a 'params' dict, found {found}")
    class_name = config["class"]
    if class_name not in classes:
        raise CheckpointError(f"config.class '{class_name}' is not supported (known: {list(classes)})")
    module_name, attr = classes[class_name]
    cls = getattr(importlib.import_module(module_name), attr)
    defaults = _constructor_defaults(cls)
    kwargs = {}
    for name, entry in config["params"].items():
        value = _official_param_value(name, entry)
        if name not in defaults:
            raise CheckpointError(f"config param '{name}' (value {value!r}) is not an argument of iseg {attr}")
        default = defaults[name]
        if entry.get("specified", True) or default is inspect.Parameter.empty or value != _as_tuples(default):
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"cannot build {attr} from config params {kwargs}: {error}") from error


def _official_param_value(name: str, entry: Any) -> Any:
    if not isinstance(entry, Mapping) or "value" not in entry:
        raise CheckpointError(f"config param '{name}' must be a dict with 'type' and 'value', got {entry!r}")
    kind = entry.get("type", "builtin")
    if kind == "builtin":
        return _as_tuples(entry["value"])
    if kind == "class":
        if entry["value"] not in _OFFICIAL_PARAM_CLASSES:
            raise CheckpointError(
                f"config param '{name}' names class '{entry['value']}', not one of {list(_OFFICIAL_PARAM_CLASSES)}"
            )
        return _OFFICIAL_PARAM_CLASSES[entry["value"]]
    raise CheckpointError(f"config param '{name}' has unknown type '{kind}' (expected 'builtin' or 'class')")


def _as_tuples(value: Any) -> Any:
    """Lists -> tuples, recursively: the reference pickles tuples of lists, JSON gives lists."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(item) for item in value)
    return value


def _constructor_defaults(cls: type) -> dict[str, Any]:
    """Keyword arguments of ``cls`` and of the bases its ``**kwargs`` forwards to, with defaults."""
    defaults: dict[str, Any] = {}
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__ or klass is nn.Module:
            continue
        forwards = False
        for param in list(inspect.signature(klass.__init__).parameters.values())[1:]:
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                forwards = True
            elif param.kind is not inspect.Parameter.VAR_POSITIONAL:
                defaults.setdefault(param.name, param.default)
        if not forwards:
            break
    return defaults


def _is_official_container(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and set(obj) == {"state_dict", "config"}
        and isinstance(obj["config"], Mapping)
        and "class" in obj["config"]
    )


class RitmContainerFormat:
    """RITM's ``torch.save({'state_dict': ..., 'config': model._config})``."""

    name = "ritm"

    def matches(self, obj: Any) -> bool:
        return _is_official_container(obj)

    def build(self, obj: Any) -> nn.Module:
        model = build_model_from_official_config(obj["config"])
        load_state_dict_strict(model, obj["state_dict"])
        return model


class FcfiContainerFormat:
    """FCFI's container: RITM's layout and class names, with FCFI params (mid_ch, update_num,
    expansion_ratio) in the config; builds FCFIHRNetModel / FCFIDeeplabModel.

    The architecture comes from the config params (FCFI's "h18s" file says ``small=False``)."""

    name = "fcfi"

    def matches(self, obj: Any) -> bool:
        params = obj["config"].get("params") if _is_official_container(obj) else None
        return isinstance(params, Mapping) and any(name in params for name in _FCFI_PARAMS)

    def build(self, obj: Any) -> nn.Module:
        model = build_model_from_official_config(obj["config"], _FCFI_CLASSES)
        load_state_dict_strict(model, obj["state_dict"])
        return model


# ----------------------------------------------------------------------------------------------
# f-BRS: a bare state dict, the architecture inferred from its keys and shapes (spec §1.5)


class FbrsStateDictFormat:
    """f-BRS's released files (``hrnet18_ocr64_sbd.pth``, ``resnet34_dh128_sbd.pth``, ...):
    ``torch.save(net.state_dict())`` with no config; builds FBRSHRNetModel / FBRSDeeplabModel.

    The architecture is read as f-BRS's loader does: HRNet if a key contains
    ``feature_extractor.stage2.0.branches``, small if fewer than 1800 ``feature_extractor.`` keys,
    width and OCR width from two tensor shapes; otherwise a DeepLab whose ResNet depth follows from
    the number of backbone tensors without ``num_batches_tracked`` (<= 181 r34, <= 276 r50, <= 531
    r101), the head width from ``aspp.project.0.weight`` and the ASPP dropout from an
    ``aspp_dropout`` entry if present, else 0.5 for width 256 and 0.2 otherwise. The ResNet files
    (converted from MXNet) have no ``num_batches_tracked`` buffers: missing ones are added as 0.
    The network is built without the aux output, as the reference evaluates it.
    """

    name = "fbrs"
    network_prefixes = ("rgb_conv.", "feature_extractor.")
    hrnet_marker = "feature_extractor.stage2.0.branches"
    hrnet_width_key = "feature_extractor.stage2.0.branches.0.0.conv1.weight"
    ocr_width_key = "feature_extractor.ocr_distri_head.object_context_block.f_down.1.0.bias"
    small_hrnet_max_keys = 1800  # fewer feature_extractor keys than this: HRNet-W18-small
    resnet_max_keys = (("resnet34", 181), ("resnet50", 276), ("resnet101", 531))
    aspp_key = "feature_extractor.aspp.project.0.weight"

    def matches(self, obj: Any) -> bool:
        """A bare state dict (name -> tensor) with keys of an f-BRS network's top-level modules."""
        return (
            isinstance(obj, Mapping)
            and len(obj) > 0
            and all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in obj.items())
            and any(key.startswith(self.network_prefixes) for key in obj)
        )

    def architecture(self, state_dict: Mapping[str, torch.Tensor]) -> tuple[str, dict[str, Any]]:
        """(iseg class name, constructor kwargs) of the network the state dict belongs to."""
        if not any(key.startswith("rgb_conv.") for key in state_dict):
            raise CheckpointError(
                f"no rgb_conv.* tensors: f-BRS networks fuse the clicks with rgb_conv; the file seems to hold "
                f"[{describe_architecture(state_dict)}] "
                "(RITM/FCFI weights come in a {'state_dict', 'config'} container)"
            )

        def shape(key: str) -> tuple[int, ...]:
            if key not in state_dict:
                raise CheckpointError(
                    f"f-BRS architecture inference needs tensor '{key}', which the file lacks "
                    f"(it seems to hold [{describe_architecture(state_dict)}])"
                )
            return tuple(state_dict[key].shape)

        if any(self.hrnet_marker in key for key in state_dict):
            num_keys = sum("feature_extractor." in key for key in state_dict)
            kwargs = {
                "width": shape(self.hrnet_width_key)[0],
                "ocr_width": shape(self.ocr_width_key)[0],
                "small": num_keys < self.small_hrnet_max_keys,
            }
            return "FBRSHRNetModel", kwargs
        if any("feature_extractor.backbone" in key for key in state_dict):
            num_keys = sum(
                "feature_extractor.backbone" in key and "num_batches_tracked" not in key for key in state_dict
            )
            backbone = next((name for name, most in self.resnet_max_keys if num_keys <= most), None)
            if backbone is None:
                raise CheckpointError(
                    f"{num_keys} ResNet backbone tensors: more than any f-BRS backbone has "
                    f"({', '.join(f'{name} <= {most}' for name, most in self.resnet_max_keys)})"
                )
            deeplab_ch = shape(self.aspp_key)[0]
            if "aspp_dropout" in state_dict:
                aspp_dropout = float(state_dict["aspp_dropout"].item())
            else:
                aspp_dropout = 0.5 if deeplab_ch == 256 else 0.2
            return "FBRSDeeplabModel", {"backbone": backbone, "deeplab_ch": deeplab_ch, "aspp_dropout": aspp_dropout}
        raise CheckpointError(
            f"neither an f-BRS HRNet (no '{self.hrnet_marker}*' keys) nor an f-BRS DeepLab (no "
            f"'feature_extractor.backbone*' keys); the file seems to hold [{describe_architecture(state_dict)}]"
        )

    def build(self, obj: Any) -> nn.Module:
        import iseg.models.fbrs as fbrs

        class_name, kwargs = self.architecture(obj)
        try:
            model = getattr(fbrs, class_name)(**kwargs)
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"cannot build {class_name} from inferred arguments {kwargs}: {error}") from error
        state_dict = {key: value for key, value in obj.items() if key != "aspp_dropout"}
        for key, value in model.state_dict().items():
            stem = key[: -len("num_batches_tracked")]
            if key.endswith("num_batches_tracked") and key not in state_dict and f"{stem}running_mean" in state_dict:
                state_dict[key] = torch.zeros_like(value)
        load_state_dict_strict(model, state_dict)
        return model


# ----------------------------------------------------------------------------------------------
# iseg's Lightning checkpoints: network under 'net.' in 'state_dict', its Hydra config in
# hyper_parameters['net']


class LightningFormat:
    """``.ckpt`` written by iseg's LightningModule (``save_hyperparameters`` with ``net``)."""

    name = "lightning"
    prefix = "net."

    def matches(self, obj: Any) -> bool:
        return isinstance(obj, Mapping) and "state_dict" in obj and "hyper_parameters" in obj

    def build(self, obj: Any) -> nn.Module:
        import hydra.utils
        from omegaconf import DictConfig, OmegaConf

        hparams = obj["hyper_parameters"]
        net_config = hparams.get("net") if isinstance(hparams, (Mapping, DictConfig)) else None
        if isinstance(net_config, DictConfig):
            net_config = OmegaConf.to_container(net_config, resolve=True)
        if not isinstance(net_config, Mapping) or "_target_" not in net_config:
            raise CheckpointError("hyper_parameters['net'] must be the network's Hydra config with a '_target_'")
        if not str(net_config["_target_"]).startswith("iseg."):
            raise CheckpointError(f"hyper_parameters['net']._target_ '{net_config['_target_']}' is not an iseg class")
        model = hydra.utils.instantiate(_without_pretrained(net_config))
        # Other entries belong to the training module (losses, metrics), not to the network.
        state_dict = {k[len(self.prefix) :]: v for k, v in obj["state_dict"].items() if k.startswith(self.prefix)}
        if not state_dict:
            raise CheckpointError(f"state_dict has no '{self.prefix}*' keys; found {_preview(list(obj['state_dict']))}")
        load_state_dict_strict(model, state_dict)
        return model


def _without_pretrained(config: Any) -> Any:
    """ImageNet weights are pointless (and need a network) when trained weights follow."""
    if isinstance(config, Mapping):
        return {k: (False if k == "pretrained" else _without_pretrained(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [_without_pretrained(item) for item in config]
    return config


# ----------------------------------------------------------------------------------------------
# S2M (Scribble-to-Mask): the released s2m.pth is a bare state dict of the un-wrapped network
# (backbone.* / classifier.*); the unreleased training files wrap it as {'it', 'network', ...}


class S2MStateDictFormat:
    """``s2m.pth`` (``torch.save(net.state_dict())``) or a reference training checkpoint
    ``{'it', 'network', 'optimizer', 'scheduler'}``; builds :class:`iseg.models.s2m.S2MNet`."""

    name = "s2m"
    prefixes = ("backbone.", "classifier.")
    conv1_key = "backbone.conv1.weight"

    def state_dict(self, obj: Any) -> Any:
        return obj["network"] if isinstance(obj, Mapping) and "network" in obj and "it" in obj else obj

    def matches(self, obj: Any) -> bool:
        state_dict = self.state_dict(obj)
        return (
            isinstance(state_dict, Mapping)
            and self.conv1_key in state_dict
            and "classifier.aspp.project.0.weight" in state_dict
            and all(isinstance(key, str) and key.startswith(self.prefixes) for key in state_dict)
        )

    def build(self, obj: Any) -> nn.Module:
        from iseg.models.s2m import S2MNet

        state_dict = self.state_dict(obj)
        conv1 = tuple(state_dict[self.conv1_key].shape)
        if len(conv1) != 4 or conv1[1] != 6:
            raise CheckpointError(
                f"{self.conv1_key} has shape {conv1}: an S2M network takes 6 input channels (RGB, previous mask, "
                "positive and negative scribbles); a 3-channel DeepLabV3+ checkpoint is an initialisation "
                "(iseg.models.s2m.init.load_deeplab_init), not an S2M model"
            )
        model = S2MNet()
        load_state_dict_strict(model, state_dict)
        return model


# Forte et al.: a bare state dict of MattingModuleSingleGpu (keys "encoder.*" and "decoder.*")


class ForteStateDictFormat:
    """Forte et al.'s released ``InterSegSynthFT.pth``: ``torch.save(model.state_dict())`` of the
    reference's ``MattingModuleSingleGpu`` (no config, no ``module.`` prefix); builds
    :class:`~iseg.models.forte.ForteNet` and loads it strictly, as the reference does.

    Recognised by its top-level modules (only ``encoder.`` and ``decoder.``) and the user encoder's
    ``decoder.usr_encoder.conv1.weight``, which no other supported network has.
    """

    name = "forte"
    marker = "decoder.usr_encoder.conv1.weight"

    def matches(self, obj: Any) -> bool:
        return (
            isinstance(obj, Mapping)
            and self.marker in obj
            and all(isinstance(key, str) and key.startswith(("encoder.", "decoder.")) for key in obj)
        )

    def build(self, obj: Any) -> nn.Module:
        from iseg.models.forte import ForteNet

        model = ForteNet(guided_filter="decoder.guided_map_conv1.weight" in obj)
        load_state_dict_strict(model, obj)
        return model


register_checkpoint_format(RitmContainerFormat())
register_checkpoint_format(LightningFormat())
register_checkpoint_format(FcfiContainerFormat(), before="ritm")
register_checkpoint_format(FbrsStateDictFormat())
register_checkpoint_format(S2MStateDictFormat())

# the IOG format module needs the helpers above, so it is imported last
from iseg.models.iog.checkpoint import IogStateDictFormat

register_checkpoint_format(IogStateDictFormat())
register_checkpoint_format(ForteStateDictFormat())
