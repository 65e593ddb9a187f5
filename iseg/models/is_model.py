"""RITM's ISModel: image + previous mask + clicks -> segmentation logits, for any backbone.

Subclasses build ``self.feature_extractor`` (and heads) and implement ``backbone_forward``.
Constructor arguments and their defaults are those of the reference ``ISModel`` so that an
official checkpoint's serialized config maps 1:1 onto them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from iseg.interaction.encoding import ClickEncoder
from iseg.models.inputs import ClickInputs, NetInputs
from iseg.models.layers import ImageNormalize, ScaleLayer

IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class FusedInput(NamedTuple):
    """The network input after click fusion: what the backbone gets and what FCFI's modules reuse."""

    backbone_input: torch.Tensor  # normalised image (Conv1S/E) or the DMF-fused 3-channel input
    stem_features: torch.Tensor | None  # Conv1S/E click features added after the stem; None for DMF
    coord_features: torch.Tensor  # click encoding ([prev mask,] positive, negative) at input size
    image: torch.Tensor  # normalised RGB
    prev_mask: torch.Tensor | None  # previous probabilities (channel 3 of the input), if used


class ISModel(nn.Module):
    """Click fusion, previous-mask input and output upsampling shared by HRNet and DeepLab models.

    Fusion variants (RITM paper names): DMF (``use_rgb_conv=True``), Conv1E (``conv_extend=True``)
    and Conv1S (default when both are False; used by every released ITER-M model).

    ``maps_scale_init`` is Conv1S's initial click-feature scale (not in the reference, which fixes
    0.05 so clicks do not disturb an ImageNet-initialised stem; training from scratch learns the
    clicks far sooner from 1.0).
    """

    def __init__(
        self,
        use_rgb_conv: bool = True,
        with_aux_output: bool = False,
        norm_radius: float = 260,
        use_disks: bool = False,
        cpu_dist_maps: bool = False,
        clicks_groups: Any = None,
        with_prev_mask: bool = False,
        use_leaky_relu: bool = False,
        binary_prev_mask: bool = False,
        conv_extend: bool = False,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        norm_mean_std: tuple[tuple[float, ...], tuple[float, ...]] = IMAGENET_MEAN_STD,
        maps_scale_init: float = 0.05,
    ):
        super().__init__()
        if clicks_groups is not None:
            raise ValueError(f"clicks_groups={clicks_groups!r} is not supported (no released model uses it)")
        # cpu_dist_maps selects the reference's Cython BFS encoder; the torch encoder is used in all cases.
        self.with_aux_output = with_aux_output
        self.with_prev_mask = with_prev_mask
        self.binary_prev_mask = binary_prev_mask
        self.normalization = ImageNormalize(*norm_mean_std)
        self.coord_feature_ch = 2 + (1 if with_prev_mask else 0)
        self.dist_maps = ClickEncoder(radius=norm_radius, use_disks=use_disks)

        self.rgb_conv: nn.Module | None = None
        self.maps_transform: nn.Module | None = None
        if use_rgb_conv:
            mid = 6 + self.coord_feature_ch
            self.rgb_conv = nn.Sequential(
                nn.Conv2d(3 + self.coord_feature_ch, mid, kernel_size=1),
                norm_layer(mid),
                nn.LeakyReLU(negative_slope=0.2) if use_leaky_relu else nn.ReLU(inplace=True),
                nn.Conv2d(mid, 3, kernel_size=1),
            )
        elif conv_extend:
            self.maps_transform = nn.Conv2d(self.coord_feature_ch, 64, kernel_size=3, stride=2, padding=1)
            self.maps_transform.lr_mult = 0.1
        else:
            self.maps_transform = nn.Sequential(
                nn.Conv2d(self.coord_feature_ch, 16, kernel_size=1),
                nn.LeakyReLU(negative_slope=0.2) if use_leaky_relu else nn.ReLU(inplace=True),
                nn.Conv2d(16, 64, kernel_size=3, stride=2, padding=1),
                ScaleLayer(init_value=maps_scale_init, lr_mult=1),
            )

    def default_inputs(self) -> NetInputs:
        """The input adapter of this network: clicks, plus the previous mask as channel 3 for ITER-M."""
        return ClickInputs(prev_mask=self.with_prev_mask)

    def input_refinement_module(self, target: str) -> nn.Module:
        """The module whose output input-BRS offsets: ``'rgb'`` the normalised image, ``'click_maps'``
        the [positive, negative] click maps (before the previous mask joins them)."""
        modules = {"rgb": self.normalization, "click_maps": self.dist_maps}
        if target not in modules:
            raise ValueError(f"input refinement target must be one of {sorted(modules)}, got {target!r}")
        return modules[target]

    def feature_refinement(
        self, inputs: dict[str, Any], mode: str
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """(features at f-BRS mode ``'A'``, ``'B'`` or ``'C'``'s insertion point, computed without
        gradients; the rest of the network: features -> ``instances`` logits at input resolution).

        The split is network-specific (reference §4); a network without one refuses f-BRS.
        """
        raise NotImplementedError(f"{type(self).__name__} has no feature split for f-BRS (mode {mode!r})")

    # How each output is resized to the input (bilinear); subclasses with more outputs extend it.
    output_align_corners: dict[str, bool] = {"instances": True, "instances_aux": True}

    def forward(self, image: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]:
        """image: (B, 3 or 4, H, W) RGB in [0, 1] (+ previous probabilities); points: (B, 2N, 3).

        Returns logits ``instances`` (and ``instances_aux``) at input resolution.
        """
        fused = self.fuse_clicks(image, points)
        outputs = self.backbone_forward(fused.backbone_input, fused.stem_features)
        return self.resize_outputs(outputs, fused.image.shape[2:])

    def fuse_clicks(self, image: torch.Tensor, points: torch.Tensor) -> FusedInput:
        """Normalise the image, encode the clicks (+ previous mask) and fuse them (DMF or Conv1S/E)."""
        image, prev_mask = self.prepare_input(image)
        coord_features = self.get_coord_features(image, prev_mask, points)
        if self.rgb_conv is not None:
            return FusedInput(self.rgb_conv(torch.cat((image, coord_features), dim=1)), None, coord_features, image, prev_mask)
        return FusedInput(image, self.maps_transform(coord_features), coord_features, image, prev_mask)

    def resize_outputs(self, outputs: dict[str, torch.Tensor], size: Sequence[int]) -> dict[str, torch.Tensor]:
        """Bilinear resize of every output named in ``output_align_corners`` to ``size``."""
        for key, align_corners in self.output_align_corners.items():
            if key in outputs:
                outputs[key] = F.interpolate(outputs[key], size=size, mode="bilinear", align_corners=align_corners)
        return outputs

    def prepare_input(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        expected = 4 if self.with_prev_mask else 3
        if image.dim() != 4 or image.shape[1] != expected:
            raise ValueError(
                f"{type(self).__name__} expects input (B, {expected}, H, W) "
                f"({'RGB + previous mask' if self.with_prev_mask else 'RGB'}), got {tuple(image.shape)}"
            )
        prev_mask = None
        if self.with_prev_mask:
            prev_mask = image[:, 3:, :, :]
            image = image[:, :3, :, :]
            if self.binary_prev_mask:
                prev_mask = (prev_mask > 0.5).float()
        return self.normalization(image), prev_mask

    def get_coord_features(
        self, image: torch.Tensor, prev_mask: torch.Tensor | None, points: torch.Tensor
    ) -> torch.Tensor:
        """[prev_mask, positive map, negative map] at input resolution."""
        coord_features = self.dist_maps(image, points)
        if prev_mask is not None:
            coord_features = torch.cat((prev_mask, coord_features), dim=1)
        return coord_features

    def backbone_forward(self, image: torch.Tensor, coord_features: torch.Tensor | None = None) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement backbone_forward")

    def lr_multipliers(self) -> dict[str, float]:
        """Learning-rate multiplier of every parameter, by name (reference §1.7)."""
        raise NotImplementedError(f"{type(self).__name__} must implement lr_multipliers")
