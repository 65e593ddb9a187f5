"""RITM's HRNetModel: ISModel click fusion + HRNet(+OCR) feature extractor.

Constructor arguments and defaults are the reference's, so an official checkpoint's serialized
config maps onto them; ``pretrained`` is ours (the reference loads ImageNet weights in its
training scripts instead).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from iseg.models.backbones.hrnet_ocr import HRNetOCR
from iseg.models.init import xavier_gluon_init_
from iseg.models.is_model import ISModel

# Head parts RITM trains at the full learning rate; the rest of feature_extractor (including
# aux_head and cls_head) gets backbone_lr_mult (reference §1.7).
_FULL_LR_HEADS = ("conv3x3_ocr", "ocr_distri_head")


class HRNetModel(ISModel):
    """Interactive segmentation with an HRNet-W{width}(-small) + OCR-{ocr_width} network.

    Fresh weights follow the paper recipe: XavierGluon (gaussian, magnitude 2) everywhere, then,
    when ``pretrained``, timm's ImageNet HRNet weights in the backbone (fails with a clear error
    when they cannot be fetched).
    """

    def __init__(
        self,
        width: int = 48,
        ocr_width: int = 256,
        small: bool = False,
        backbone_lr_mult: float = 0.1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        pretrained: bool = False,
        **kwargs: Any,
    ):
        super().__init__(norm_layer=norm_layer, **kwargs)
        if ocr_width == 0 and self.with_aux_output:
            raise ValueError("HRNetModel with ocr_width=0 has no aux output; set with_aux_output=False")
        self.backbone_lr_mult = backbone_lr_mult
        self.feature_extractor = HRNetOCR(width=width, ocr_width=ocr_width, small=small, norm_layer=norm_layer)
        xavier_gluon_init_(self)
        if pretrained:
            self.feature_extractor.load_imagenet_weights_()

    def backbone_forward(self, image: torch.Tensor, coord_features: torch.Tensor | None = None) -> dict:
        instances, instances_aux = self.feature_extractor(image, coord_features)
        outputs = {"instances": instances}
        if self.with_aux_output:
            outputs["instances_aux"] = instances_aux
        return outputs

    def feature_refinement(
        self, inputs: dict[str, Any], mode: str
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """f-BRS on HRNet (reference §4): modes A and B act on the aggregated HRNet features (15w
        channels; the rest is aux head + OCR + classifier), C on the OCR output (2K; the classifier)."""
        if mode not in ("A", "B", "C"):
            raise ValueError(f"f-BRS mode must be 'A', 'B' or 'C', got {mode!r}")
        extractor = self.feature_extractor
        if extractor.ocr_width == 0:
            raise ValueError("f-BRS on HRNet needs the OCR head (ocr_width > 0)")
        with torch.no_grad():
            fused = self.fuse_clicks(**inputs)
            features = extractor.aggregate(extractor.stages(extractor.stem(fused.backbone_input, fused.stem_features)))
            if mode == "C":
                out_aux = extractor.aux_head(features)
                features = extractor.conv3x3_ocr(features)
                features = extractor.ocr_distri_head(features, extractor.ocr_gather_head(features, out_aux))
        size = fused.image.shape[2:]

        def rest(x: torch.Tensor) -> torch.Tensor:
            logits = extractor.cls_head(x) if mode == "C" else extractor.head(x)[0]
            return self.resize_outputs({"instances": logits}, size)["instances"]

        return features, rest

    def lr_multipliers(self) -> dict[str, float]:
        """Per-parameter multipliers of RITM's optimizer (one group per parameter there)."""
        maps_mult = float(getattr(self.maps_transform, "lr_mult", 1.0))
        multipliers = {}
        for name, _ in self.named_parameters():
            parts = name.split(".")
            if parts[0] == "feature_extractor":
                multipliers[name] = 1.0 if parts[1] in _FULL_LR_HEADS else self.backbone_lr_mult
            elif parts[0] == "maps_transform":
                multipliers[name] = maps_mult
            else:
                multipliers[name] = 1.0
        return multipliers
