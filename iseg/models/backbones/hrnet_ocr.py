"""RITM's HighResolutionNet + OCR head, built from timm's HRNet.

timm's ``hrnet_w18_small_v2`` / ``hrnet_w{18,30,32,40,44,48,64}`` have the same backbone tensors
under the same names as RITM's ``feature_extractor`` (reference §1.8), so the official keys load
1:1. Three things differ in behaviour and are patched here: fuse layers upsample bilinearly
(align_corners=True) to the exact size of the target branch instead of timm's nearest x2^k,
the click features are added to the stem between ``act1`` and ``conv2``, and the ReLU after each
fuse can be switched off (FCFI). timm's classification modules are dropped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from iseg.models.backbones.ocr import SpatialGather, SpatialOCR
from iseg.models.init import create_timm_model

_FULL_WIDTHS = (18, 30, 32, 40, 44, 48, 64)
# Original HRNet-Image-Classification weights, the files RITM's configs point to.
_IMAGENET_TAG = "ms_in1k"
_STEM_AND_STAGES = (
    "conv1", "bn1", "act1", "conv2", "bn2", "act2",
    "layer1", "transition1", "stage2", "transition2", "stage3", "transition3", "stage4",
)  # fmt: skip


def timm_hrnet_name(width: int, small: bool) -> str:
    """timm architecture matching RITM's ``HighResolutionNet(width, small)``."""
    if small:
        if width != 18:
            raise ValueError(f"small=True HRNet exists only for width=18 (timm hrnet_w18_small_v2), got width={width}")
        return "hrnet_w18_small_v2"
    if width not in _FULL_WIDTHS:
        raise ValueError(f"HRNet width={width} has no timm model; choose one of {_FULL_WIDTHS}")
    return f"hrnet_w{width}"


def _check_stage_layout(timm_model: nn.Module, width: int, small: bool) -> None:
    """Fail loudly if timm's config ever stops matching RITM's (blocks, modules, channels)."""
    blocks = 2 if small else 4
    expected = {
        "stage1": (1, (blocks,), (64,)),
        "stage2": (1, (blocks,) * 2, (width, 2 * width)),
        "stage3": (3 if small else 4, (blocks,) * 3, (width, 2 * width, 4 * width)),
        "stage4": (2 if small else 3, (blocks,) * 4, (width, 2 * width, 4 * width, 8 * width)),
    }
    for stage, (modules, num_blocks, channels) in expected.items():
        cfg = getattr(timm_model, f"{stage}_cfg")
        found = (cfg["num_modules"], tuple(cfg["num_blocks"]), tuple(cfg["num_channels"]))
        if found != (modules, num_blocks, channels):
            raise RuntimeError(
                f"timm HRNet {stage} is {found}, RITM width={width} small={small} needs {expected[stage]}"
            )


def _replace_norms(module: nn.Module, norm_layer: type[nn.Module]) -> None:
    """Swap timm's BatchNorm2d layers for ``norm_layer`` (same state-dict keys)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and type(child) is not norm_layer:
            replacement = norm_layer(child.num_features)
            replacement.load_state_dict(child.state_dict())
            setattr(module, name, replacement)
        else:
            _replace_norms(child, norm_layer)


class HRFuseModule(nn.Module):
    """One HRNet module: parallel branches, then every output branch sums all inputs.

    Holds timm's ``branches`` and ``fuse_layers`` (keys unchanged) with RITM's fusion: inputs from
    lower resolutions are 1x1-conv+BN'ed then resized bilinearly (align_corners=True) to the exact
    size of the output branch, which also makes any input size work. Sum order follows RITM:
    branch 0's term first, then j = 1, 2, ...
    """

    def __init__(self, branches: nn.ModuleList, fuse_layers: nn.ModuleList, fuse_relu: bool = True):
        super().__init__()
        self.branches = branches
        self.fuse_layers = fuse_layers
        self.fuse_act = nn.ReLU(inplace=False) if fuse_relu else nn.Identity()

    @classmethod
    def from_timm(cls, module: nn.Module, fuse_relu: bool = True) -> HRFuseModule:
        """Take over a timm ``HighResolutionModule``, dropping its nearest ``Upsample`` layers."""
        fuse_layers = nn.ModuleList()
        for i, row in enumerate(module.fuse_layers):
            new_row = nn.ModuleList()
            for j, layer in enumerate(row):
                if j > i:
                    if not isinstance(layer[-1], nn.Upsample) or len(layer) != 3:
                        raise RuntimeError(f"unexpected timm fuse layer [{i}][{j}]: {layer}")
                    layer = nn.Sequential(layer[0], layer[1])
                new_row.append(layer)
            fuse_layers.append(new_row)
        return cls(module.branches, fuse_layers, fuse_relu)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        x = [branch(xi) for branch, xi in zip(self.branches, x)]
        outputs = []
        for i, row in enumerate(self.fuse_layers):
            size = x[i].shape[-2:]
            y = None
            for j, layer in enumerate(row):
                term = layer(x[j])
                if j > i:
                    term = F.interpolate(term, size=size, mode="bilinear", align_corners=True)
                y = term if y is None else y + term
            outputs.append(self.fuse_act(y))
        return outputs


class HRNetOCR(nn.Module):
    """HRNet backbone + OCR segmentation head; returns stride-4 (logits, aux logits or None).

    ``ocr_width=0`` replaces the OCR head by RITM's plain head (3x3 conv+BN+ReLU, 1x1 conv) and
    has no aux output. Submodules are split into ``stem``/``stages``/``aggregate``/``head`` so
    that variants (FCFI) can hook between them.
    """

    def __init__(
        self,
        width: int,
        ocr_width: int = 256,
        small: bool = False,
        num_classes: int = 1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        fuse_relu: bool = True,
    ):
        super().__init__()
        if ocr_width < 0:
            raise ValueError(f"ocr_width must be >= 0, got {ocr_width}")
        self.width = width
        self.small = small
        self.ocr_width = ocr_width
        self.timm_name = timm_hrnet_name(width, small)
        timm_model = create_timm_model(self.timm_name, pretrained=False, head=None)
        _check_stage_layout(timm_model, width, small)
        for name in _STEM_AND_STAGES:
            module = getattr(timm_model, name)
            if name.startswith("stage"):
                module = nn.Sequential(*(HRFuseModule.from_timm(m, fuse_relu) for m in module))
            setattr(self, name, module)
        if not callable(norm_layer):
            raise TypeError(f"norm_layer must be a normalisation layer class, got {norm_layer!r}")
        if norm_layer is not nn.BatchNorm2d:
            _replace_norms(self, norm_layer)

        channels = 15 * width  # w + 2w + 4w + 8w after aggregation
        self.feature_channels = channels
        if ocr_width > 0:
            mid = 2 * ocr_width
            self.conv3x3_ocr = nn.Sequential(
                nn.Conv2d(channels, mid, kernel_size=3, padding=1), norm_layer(mid), nn.ReLU(inplace=True)
            )
            self.ocr_gather_head = SpatialGather()
            self.ocr_distri_head = SpatialOCR(mid, ocr_width, mid, dropout=0.05, norm_layer=norm_layer)
            self.cls_head = nn.Conv2d(mid, num_classes, kernel_size=1)
            self.aux_head = nn.Sequential(
                nn.Conv2d(channels, channels, kernel_size=1),
                norm_layer(channels),
                nn.ReLU(inplace=True),
                nn.Conv2d(channels, num_classes, kernel_size=1),
            )
        else:
            self.cls_head = nn.Sequential(
                nn.Conv2d(channels, channels, kernel_size=3, padding=1),
                norm_layer(channels),
                nn.ReLU(inplace=True),
                nn.Conv2d(channels, num_classes, kernel_size=1),
            )

    def set_fuse_relu(self, enabled: bool) -> None:
        """Switch the ReLU after every multi-branch fuse on (RITM) or off (FCFI); no parameters change."""
        for stage in (self.stage2, self.stage3, self.stage4):
            for module in stage:
                module.fuse_act = nn.ReLU(inplace=False) if enabled else nn.Identity()

    def stem(self, x: torch.Tensor, additional_features: torch.Tensor | None = None) -> torch.Tensor:
        """Stride-4 stem; click features (B, 64, H/2, W/2) are added before ``conv2``."""
        x = self.act1(self.bn1(self.conv1(x)))
        if additional_features is not None:
            x = x + additional_features
        return self.act2(self.bn2(self.conv2(x)))

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """layer1 and stages 2-4: the four branches at strides 4, 8, 16, 32."""
        x = self.layer1(x)
        branches = self.stage2([transition(x) for transition in self.transition1])
        for transition, stage in ((self.transition2, self.stage3), (self.transition3, self.stage4)):
            inputs = []
            for i, t in enumerate(transition):
                if isinstance(t, nn.Identity):
                    inputs.append(branches[i])
                else:  # existing branch with a new width, or a new branch from the lowest resolution
                    inputs.append(t(branches[i] if i < len(branches) else branches[-1]))
            branches = stage(inputs)
        return branches

    @staticmethod
    def aggregate(branches: list[torch.Tensor]) -> torch.Tensor:
        """Resize all branches to branch 0 (bilinear, align_corners=True) and concatenate: 15w channels."""
        size = branches[0].shape[-2:]
        resized = [F.interpolate(b, size=size, mode="bilinear", align_corners=True) for b in branches[1:]]
        return torch.cat([branches[0], *resized], dim=1)

    def head(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(main logits, aux logits) from aggregated features; aux is None without OCR."""
        if self.ocr_width == 0:
            return self.cls_head(feats), None
        out_aux = self.aux_head(feats)
        feats = self.conv3x3_ocr(feats)
        context = self.ocr_gather_head(feats, out_aux)
        feats = self.ocr_distri_head(feats, context)
        return self.cls_head(feats), out_aux

    def forward(
        self, x: torch.Tensor, additional_features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.head(self.aggregate(self.stages(self.stem(x, additional_features))))

    def backbone_state_keys(self) -> list[str]:
        """State-dict keys that come from the ImageNet-pretrainable HRNet (stem to stage4)."""
        return [k for k in self.state_dict() if k.split(".", 1)[0] in _STEM_AND_STAGES]

    @torch.no_grad()
    def load_imagenet_weights_(self) -> None:
        """Copy timm's ImageNet HRNet weights into stem..stage4 (heads keep their init).

        Raises ``PretrainedWeightsUnavailable`` (from ``create_timm_model``) when offline.
        """
        source = create_timm_model(f"{self.timm_name}.{_IMAGENET_TAG}", pretrained=True, head=None).state_dict()
        own = self.state_dict()
        weights = {}
        for key in self.backbone_state_keys():
            if key not in source:
                if key.endswith("num_batches_tracked"):
                    continue
                raise KeyError(f"timm {self.timm_name} ImageNet weights lack tensor '{key}'")
            if source[key].shape != own[key].shape:
                raise ValueError(
                    f"timm {self.timm_name} ImageNet tensor '{key}' has shape {tuple(source[key].shape)}, "
                    f"expected {tuple(own[key].shape)}"
                )
            weights[key] = source[key]
        self.load_state_dict(weights, strict=False)
