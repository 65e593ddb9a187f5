"""IOG's interactive refinement network (s2m_iog_forte.md §2.2, §2.4).

The main network's layout plus a guidance encoder (``iog_points``: four stride-2 3x3 convs and a
1x1 conv, 2 -> 64 channels at 1/16) whose features join layer4 before the PSP module (2112
channels). The backbone sees the 5-channel input with the original three points only; correction
clicks reach the network through the guidance map alone, so the backbone runs once per image and
each round re-runs guidance encoder + PSP + CoarseNet + FineNet.

- ``net(image, guidance)``: one round, the predictor's call (guidance = the heatmaps with the
  user's correction clicks).
- ``net.rounds(image, guidance, gt, num_rounds)``: the reference's training/test forward: after
  each round a click is simulated from the fine map and the crop GT
  (:func:`~iseg.interaction.iog_guidance.refinement_click`) and added to the guidance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from iseg.interaction.iog_guidance import (
    LabelRule,
    add_click,
    check_label_rule,
    refinement_click,
)
from iseg.models.iog.network import IOGNetwork, PSPModule, reference_init_


def guidance_encoder(in_channels: int = 2, out_channels: int = 64) -> nn.Sequential:
    """2 -> 64 channels at 1/16: [3x3 s2 conv, BN, ReLU] x 4 (64, 128, 256, 256), then 1x1 conv, BN, ReLU."""
    layers: list[nn.Module] = []
    for cin, cout in zip((in_channels, 64, 128, 256), (64, 128, 256, 256)):
        layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    layers += [nn.Conv2d(256, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


@dataclass
class Round:
    """One refinement round: the five 128 x 128 logit maps, the batch-mean IoU of its fine map (> 0.5
    at 512) with the GT, and the guidance (with the click simulated after it) for the next round."""

    maps: list[torch.Tensor]
    iou: float
    guidance_out: torch.Tensor


class IOGRefinementNetwork(IOGNetwork):
    """IOG with the refinement branch: ``net(image, guidance)`` -> the main network's outputs.

    Args:
        label_rule: how :meth:`rounds` labels a simulated click: ``"correct"`` reads gt[y, x];
            ``"parity"`` reads gt[x, y] as the reference does (its transposed-index bug).
    """

    guidance_channels = 64

    def __init__(
        self,
        in_channels: int = 5,
        output_size: Sequence[int] = (512, 512),
        backbone_lr_mult: float = 0.1,
        label_rule: LabelRule = "correct",
        pretrained: bool | str = False,
    ):
        super().__init__(in_channels, output_size, backbone_lr_mult, pretrained)
        self.label_rule = check_label_rule(label_rule)
        self.iog_points = guidance_encoder(2, self.guidance_channels)
        self.psp4 = PSPModule(self.psp_in_channels + self.guidance_channels, 512)
        reference_init_(self.iog_points)
        reference_init_(self.psp4)

    def round_maps(self, features: Sequence[torch.Tensor], guidance: torch.Tensor) -> list[torch.Tensor]:
        """[coarse1..4, fine] at 128 x 128 for backbone features and a guidance map (B, 2, H, W)."""
        return self.heads(features, torch.cat((features[3], self.iog_points(guidance)), 1))

    def forward(self, image: torch.Tensor, guidance: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.named_outputs(self.round_maps(self.backbone_features(image), guidance))

    def backbone_features(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The backbone's features; in eval mode without gradients they are kept for the last image, so a
        correction click on the same crop re-runs only the guidance branch and the heads (as the reference's
        rounds do). The image is compared by value, so a new image is never served stale features."""
        if self.training or torch.is_grad_enabled():
            self._cached_backbone = None
            return self.backbone(image)
        cached = getattr(self, "_cached_backbone", None)
        if cached is not None and cached[0].shape == image.shape and cached[0].device == image.device:
            if torch.equal(cached[0], image):
                return cached[1]
        features = self.backbone(image)
        self._cached_backbone = (image.detach().clone(), features)
        return features

    def default_inputs(self):
        from iseg.models.iog.inputs import IOGRefinementInputs

        return IOGRefinementInputs(size=self.output_size)

    def rounds(
        self, image: torch.Tensor, guidance: torch.Tensor, gt: torch.Tensor, num_rounds: int, label_rule: LabelRule | None = None
    ) -> list[Round]:
        """The reference's forward: backbone once, then ``num_rounds`` rounds with a simulated click after each.

        ``gt`` (B, 1, H, W) in [0, 1] (object > 0.5; -1 marks void pixels, never clicked), H x W the
        guidance size. Gradients flow through every round's maps; the clicks are drawn without them.
        """
        if num_rounds < 1:
            raise ValueError(f"num_rounds must be >= 1, got {num_rounds}")
        if gt.shape[-2:] != guidance.shape[-2:]:
            raise ValueError(f"gt of size {tuple(gt.shape[-2:])} for a guidance map of size {tuple(guidance.shape[-2:])}")
        rule = check_label_rule(label_rule or self.label_rule)
        features = self.backbone(image)
        results = []
        for _ in range(num_rounds):
            maps = self.round_maps(features, guidance)
            fine = F.interpolate(maps[4].detach(), size=guidance.shape[-2:], mode="bilinear", align_corners=True)
            iou, guidance = simulate_click(fine, guidance, gt, rule)
            results.append(Round(maps, iou, guidance))
        return results


def simulate_click(
    fine_logits: torch.Tensor, guidance: torch.Tensor, gt: torch.Tensor, label_rule: LabelRule
) -> tuple[float, torch.Tensor]:
    """(batch-mean IoU of sigmoid(fine) > 0.5 with gt > 0.5, the guidance with one click added per sample)."""
    pred = torch.sigmoid(fine_logits.float()).cpu().numpy()[:, 0] > 0.5
    gt_np = gt.detach().float().cpu().numpy()[:, 0]
    target, valid = gt_np > 0.5, gt_np != -1
    maps = guidance.detach().float().cpu().numpy()
    ious, out = [], []
    for b in range(len(pred)):
        inter = np.sum(pred[b] & target[b] & valid[b])
        union = np.sum((pred[b] | target[b]) & valid[b])
        ious.append(float(inter) / float(union) if union > 0 else 0.0)
        click = refinement_click(pred[b], target[b], label_rule, valid[b])
        out.append(maps[b] if click is None else add_click(maps[b], click.y, click.x, click.is_positive))
    new = torch.from_numpy(np.stack(out).astype(np.float32)).to(guidance.device)
    return float(np.mean(ious)), new
