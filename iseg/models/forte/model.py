"""Forte et al.'s interactive segmentation network ("Getting to 99% accuracy in interactive
segmentation", the ICME 2020 "Interactive training and architecture for deep object selection").

``ForteNet`` = the reference's ``MattingModuleSingleGpu`` with its released flags (user encoder on,
previous alpha into the user encoder, guided filter on): ``encoder`` (ResNet-50 GN+WS on the image
and the six click maps) and ``decoder``. Its state dict keys are the official checkpoint's, so
``InterSegSynthFT.pth`` loads strictly (:mod:`iseg.models.checkpoints`, format ``forte``).

Unlike RITM-lineage networks, the output ``instances`` is already a probability-like alpha in
[0, 1] (clamped, not a logit); the input adapter (:class:`~iseg.models.forte.inputs.ForteInputs`)
says so to the predictor and the training loop.
"""

from __future__ import annotations

import torch
from torch import nn

from iseg.models.forte.decoder import NUM_CLICK_MAPS, InteractiveDecoder
from iseg.models.forte.resnet_gn_ws import DilatedResNet50GNWS
from iseg.models.layers import ImageNormalize


class ForteNet(nn.Module):
    """forward(image in [0, 1], click maps (B, 6, H, W), previous alpha (B, 1, H, W), trimap (B, 2, H, W))
    -> ``{'instances': alpha (B, 1, H, W) in [0, 1], 'instances_raw': the last conv's output before
    the clamp}`` (+ ``guide`` and ``pred_before_gf`` with ``probes=True``).

    ``image`` is plain RGB in [0, 1]: the ImageNet normalisation is done here (no state-dict entry).
    H and W must be multiples of 8 and larger than 5 (the guided filter's window).

    Args:
        guided_filter: the guided-filter output layer (the released model has it).
        backbone_lr_mult: learning-rate multiplier of the encoder (no training code was released;
            ours to choose).
        maps_scale_init: scale of the initial ``encoder.conv1`` weights of the six click-map
            channels. The reference adds these channels to ImageNet weights as zeros (0.0); from
            scratch (recipe/synthetic) 1.0 keeps the default initialisation.
    """

    def __init__(self, guided_filter: bool = True, backbone_lr_mult: float = 1.0, maps_scale_init: float = 1.0):
        super().__init__()
        self.normalization = ImageNormalize()
        self.encoder = DilatedResNet50GNWS(in_channels=3 + NUM_CLICK_MAPS)
        self.decoder = InteractiveDecoder(guided_filter=guided_filter)
        self.backbone_lr_mult = backbone_lr_mult
        self.reset_parameters(maps_scale_init)

    @torch.no_grad()
    def reset_parameters(self, maps_scale_init: float = 1.0) -> None:
        """Kaiming-normal convolutions (encoder: fan-out, as torchvision ResNets; decoder: fan-in, as
        the reference's ``weights_init``), GroupNorm to identity, conv1's click channels scaled."""
        for prefix, module in (("encoder", self.encoder), ("decoder", self.decoder)):
            mode = "fan_out" if prefix == "encoder" else "fan_in"
            for m in module.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
                    if m.bias is not None:
                        m.bias.zero_()
                elif isinstance(m, nn.GroupNorm):
                    m.weight.fill_(1.0)
                    m.bias.zero_()
        self.encoder.conv1.weight[:, 3:] *= maps_scale_init

    def forward(
        self,
        image: torch.Tensor,
        click_maps: torch.Tensor,
        prev_alpha: torch.Tensor,
        trimap: torch.Tensor,
        probes: bool = False,
    ) -> dict[str, torch.Tensor]:
        _check_inputs(image, click_maps, prev_alpha, trimap)
        normalized = self.normalization(image)
        features = self.encoder(torch.cat((normalized, click_maps), 1))
        outputs = self.decoder(features, click_maps, prev_alpha, trimap, probes=probes)
        outputs["instances"] = outputs.pop("alpha")
        outputs["instances_raw"] = outputs.pop("alpha_raw")
        return outputs

    def default_inputs(self):
        from iseg.models.forte.inputs import ForteInputs

        return ForteInputs()

    def lr_multipliers(self) -> dict[str, float]:
        return {name: (self.backbone_lr_mult if name.startswith("encoder.") else 1.0) for name, _ in self.named_parameters()}


def _check_inputs(image: torch.Tensor, click_maps: torch.Tensor, prev_alpha: torch.Tensor, trimap: torch.Tensor) -> None:
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image must have shape (B, 3, H, W), got {tuple(image.shape)}")
    batch, _, height, width = image.shape
    if height % 8 or width % 8 or height <= 5 or width <= 5:
        raise ValueError(f"ForteNet needs H and W that are multiples of 8 (and > 5), got {height}x{width}")
    for name, tensor, channels in (("click_maps", click_maps, NUM_CLICK_MAPS), ("prev_alpha", prev_alpha, 1), ("trimap", trimap, 2)):
        if tuple(tensor.shape) != (batch, channels, height, width):
            raise ValueError(f"{name} must have shape {(batch, channels, height, width)}, got {tuple(tensor.shape)}")
