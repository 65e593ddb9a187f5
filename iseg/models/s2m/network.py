"""S2M's network: DeepLabV3+ on a ResNet-50 at output stride 16, six input channels, one logit map.

Reference §1.1 (hkchengrex/Scribble-to-Mask, itself VainF's DeepLabV3Plus-Pytorch): the input is
the ImageNet-normalised RGB image, the previous mask in [0, 1] and the positive and negative
scribble maps; the output is one logit map ``z`` at the input size. The module layout mirrors the
reference's, so the released ``s2m.pth`` (a plain state dict, ``backbone.*`` / ``classifier.*``)
loads with strict key matching:

- ``backbone``: a torchvision-layout ResNet-50 (timm's ``resnet50``: same parameter names, stride
  on the 3x3 conv) with layer4 dilated instead of strided (first block dilation 1, then 2);
- ``classifier``: the DeepLabV3+ head, ASPP (rates 6/12/18 and image pooling) on layer4, a 48-channel
  projection of layer1, a 3x3 fusion conv and a 1x1 classifier.

The reference never uses ``z`` alone: the prediction is the soft aggregation of ``sigmoid(z)``
with the background (:mod:`iseg.inference.aggregation`). ``forward`` therefore returns both ``z``
(``object_logits``: what the multi-object predictor and the loss aggregate) and ``instances``, the
single-object aggregated foreground-vs-background logit, whose sigmoid is the reference's
one-object prediction (the contract of ``instances`` everywhere in iseg).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from iseg.inference.aggregation import single_object_logit
from iseg.models.init import create_timm_model
from iseg.models.layers import ImageNormalize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_CHANNELS = 6
"""R, G, B (normalised), previous mask, positive scribbles, negative scribbles."""


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int, dilation: int = 1) -> list[nn.Module]:
    padding = dilation * (kernel // 2)
    return [
        nn.Conv2d(in_ch, out_ch, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    ]


class ImagePooling(nn.Sequential):
    """ASPP's image-level branch: global average, 1x1 conv + BN + ReLU, resized back (align_corners=False)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(nn.AdaptiveAvgPool2d(1), *_conv_bn_relu(in_ch, out_ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1 branch, three dilated 3x3 branches, image pooling; then a
    1x1 projection of the concatenation (+ dropout 0.1, as the reference)."""

    def __init__(self, in_ch: int = 2048, rates: tuple[int, int, int] = (6, 12, 18), out_ch: int = 256):
        super().__init__()
        branches = [nn.Sequential(*_conv_bn_relu(in_ch, out_ch, 1))]
        branches += [nn.Sequential(*_conv_bn_relu(in_ch, out_ch, 3, rate)) for rate in rates]
        branches.append(ImagePooling(in_ch, out_ch))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(*_conv_bn_relu(out_ch * len(branches), out_ch, 1), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class DeepLabV3PlusHead(nn.Module):
    """ASPP on the stride-16 features, fused with a 48-channel projection of the stride-4 features."""

    def __init__(
        self, in_ch: int = 2048, low_level_ch: int = 256, num_classes: int = 1, rates: tuple[int, int, int] = (6, 12, 18)
    ):
        super().__init__()
        self.project = nn.Sequential(*_conv_bn_relu(low_level_ch, 48, 1))
        self.aspp = ASPP(in_ch, rates)
        self.classifier = nn.Sequential(*_conv_bn_relu(48 + 256, 256, 3), nn.Conv2d(256, num_classes, 1))
        self._init_weights()

    def _init_weights(self) -> None:
        """Reference head init: kaiming-normal convs, BatchNorm weight 1 and bias 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, low_level: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        context = F.interpolate(self.aspp(out), size=low_level.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(torch.cat((self.project(low_level), context), dim=1))


class ResNet50OS16(nn.Module):
    """torchvision-layout ResNet-50 trunk returning (layer1 at stride 4, layer4 at stride 16); no fc."""

    parts = ("conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4")

    def __init__(self, in_chans: int = INPUT_CHANNELS):
        super().__init__()
        net = create_timm_model("resnet50", pretrained=False, in_chans=in_chans, output_stride=16, num_classes=0)
        for name in self.parts:
            setattr(self, name, getattr(net, name))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        low_level = self.layer1(x)
        return low_level, self.layer4(self.layer3(self.layer2(low_level)))


class S2MNet(nn.Module):
    """Scribble-to-Mask: ``net(image, prev_mask, scribbles)`` -> ``{'instances', 'object_logits'}``.

    Args:
        backbone_lr_mult: learning-rate multiplier of the ResNet (the reference trains all at 1.0).
        pretrained: False, or the path of VainF's DeepLabV3+ ResNet-50 checkpoint to start from
            (the reference's initialisation, :mod:`iseg.models.s2m.init`; nothing is downloaded).
    """

    def __init__(self, backbone_lr_mult: float = 1.0, pretrained: bool | str = False):
        super().__init__()
        if pretrained is True:
            raise ValueError(
                "S2MNet(pretrained=True): give the path of VainF's DeepLabV3+ ResNet-50 checkpoint "
                "(e.g. best_deeplabv3plus_resnet50_voc_os16.pth from VainF/DeepLabV3Plus-Pytorch), or false"
            )
        self.normalization = ImageNormalize(IMAGENET_MEAN, IMAGENET_STD)
        self.backbone = ResNet50OS16(INPUT_CHANNELS)
        self.classifier = DeepLabV3PlusHead()
        self.backbone_lr_mult = backbone_lr_mult
        if pretrained:
            from iseg.models.s2m.init import load_deeplab_init

            load_deeplab_init(self, pretrained)

    def default_inputs(self):
        """S2M's input adapter: the scribbles of the open round on top of the committed mask."""
        from iseg.models.s2m.inputs import S2MInputs

        return S2MInputs()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The reference module's forward: normalised (B, 6, H, W) input -> logit map z (B, 1, H, W)."""
        if x.dim() != 4 or x.shape[1] != INPUT_CHANNELS:
            raise ValueError(f"S2M takes (B, {INPUT_CHANNELS}, H, W) inputs, got {tuple(x.shape)}")
        low_level, out = self.backbone(x)
        z = self.classifier(low_level, out)
        return F.interpolate(z, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, image: torch.Tensor, prev_mask: torch.Tensor, scribbles: torch.Tensor) -> dict[str, torch.Tensor]:
        """image (B, 3, H, W) RGB in [0, 1]; prev_mask (B, 1, H, W) in [0, 1]; scribbles (B, 2, H, W)
        positive / negative in {0, 1}. Returns ``object_logits`` z and ``instances`` (aggregated)."""
        if prev_mask.shape[1] != 1 or scribbles.shape[1] != 2:
            raise ValueError(
                f"prev_mask must be (B, 1, H, W) and scribbles (B, 2, H, W), got {tuple(prev_mask.shape)} "
                f"and {tuple(scribbles.shape)}"
            )
        x = torch.cat((self.normalization(image), prev_mask.to(image.dtype), scribbles.to(image.dtype)), dim=1)
        z = self.logits(x)
        return {"instances": single_object_logit(z), "object_logits": z}

    def lr_multipliers(self) -> dict[str, float]:
        """Learning-rate multiplier per parameter name: ``backbone_lr_mult`` on the ResNet, 1 on the head."""
        return {
            name: (self.backbone_lr_mult if name.startswith("backbone.") else 1.0) for name, _ in self.named_parameters()
        }
