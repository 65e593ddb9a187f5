"""The decoder of Forte et al.: a user-input encoder, a PPM decoder and the guided-filter output.

Module names follow the official checkpoint's ``decoder.*`` keys. The output is an alpha in [0, 1]
(clamped, no sigmoid) with the clicked pixels forced to 0 (background) or 1 (foreground), then
smoothed by a guided filter whose guide the network computes from the image and the two
smallest-scale click maps (``guided_filter_pytorch``'s ``GuidedFilter(r=2, eps=1e-8)``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from guided_filter_pytorch.guided_filter import GuidedFilter
from torch import nn

from iseg.models.forte.layers import WSConv2d, group_norm

NUM_CLICK_MAPS = 6


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class UserEncoder(nn.Module):
    """Click maps (+ previous alpha) -> user features at 1/2 (64 ch), 1/4 (256) and 1/8 (256)."""

    def __init__(self, in_channels: int = NUM_CLICK_MAPS + 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, stride=1, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, stride=1, padding=1)
        self.conv4 = nn.Conv2d(128, 256, 3, stride=2, padding=1)
        self.conv5 = nn.Conv2d(256, 256, 3, stride=2, padding=1)
        self.conv6 = nn.Conv2d(256, 256, 3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(1/8 features, 1/4 features, 1/2 features)."""
        x = F.leaky_relu(self.conv1(x))
        half = F.leaky_relu(self.conv2(x))
        x = F.leaky_relu(self.conv3(half))
        quarter = F.leaky_relu(self.conv4(x))
        x = F.leaky_relu(self.conv5(quarter))
        return F.leaky_relu(self.conv6(x)), quarter, half


def _ws_block(in_ch: int, out_ch: int, kernel_size: int) -> list[nn.Module]:
    return [WSConv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=True), group_norm(out_ch), nn.LeakyReLU()]


class InteractiveDecoder(nn.Module):
    """Forte et al.'s ``InteractiveSegNet`` with the released settings (user encoder on the click maps
    and the previous alpha, guided filter on).

    ``forward`` returns the alpha and, with ``probes=True``, the intermediate maps the golden
    fixtures record (raw last-conv output, the forced prediction before the filter, the guide).
    """

    def __init__(self, pool_scales: tuple[int, ...] = (1, 2, 3, 6), guided_filter: bool = True):
        super().__init__()
        self.usr_encoder = UserEncoder()
        c5 = 2048 + 256
        self.ppm = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(scale), *_ws_block(c5, 256, 1)) for scale in pool_scales
        )
        self.conv_up1 = nn.Sequential(*_ws_block(c5 + len(pool_scales) * 256, 256, 3), *_ws_block(256, 256, 3))
        self.conv_up2 = nn.Sequential(*_ws_block(256 + 256 + 256, 256, 3))
        self.conv_up3 = nn.Sequential(*_ws_block(256 + 64 + 64, 64, 3))
        self.conv_up4 = nn.Sequential(
            nn.Conv2d(64 + 3 + NUM_CLICK_MAPS, 32, 3, padding=1),
            nn.LeakyReLU(),
            nn.Conv2d(32, 16, 3, padding=1),
            nn.LeakyReLU(),
            nn.Conv2d(16, 1, 1),
        )
        self.use_guided_filter = guided_filter
        if guided_filter:
            self.guided_map_conv1 = nn.Conv2d(3 + 2, 64, 1)
            self.guided_map_conv2 = nn.Conv2d(64, 1, 1)
            self.guided_filter = GuidedFilter(2, 1e-8)

    def forward(
        self,
        features: list[torch.Tensor],
        click_maps: torch.Tensor,
        prev_alpha: torch.Tensor,
        trimap: torch.Tensor,
        probes: bool = False,
    ) -> dict[str, torch.Tensor]:
        network_input, conv1_out, layer1, *_, layer4 = features
        image = network_input[:, :3]
        usr_8, usr_4, usr_2 = self.usr_encoder(torch.cat((click_maps, prev_alpha), 1))
        c5 = torch.cat((layer4, usr_8), 1)
        size = c5.shape[-2:]
        pooled = [F.interpolate(stage(c5), size, mode="bilinear", align_corners=False) for stage in self.ppm]
        x = _up2(self.conv_up1(torch.cat([c5, *pooled], 1)))
        x = _up2(self.conv_up2(torch.cat((x, layer1, usr_4), 1)))
        x = _up2(self.conv_up3(torch.cat((x, conv1_out, usr_2), 1)))
        raw = self.conv_up4(torch.cat((x, image, click_maps), 1))
        pred = force_clicks(raw.clamp(0, 1), trimap)
        outputs = {"alpha": pred, "alpha_raw": raw}
        if self.use_guided_filter:
            guide = self.guided_map_conv2(F.relu(self.guided_map_conv1(torch.cat((image, click_maps[:, ::3]), 1))))
            outputs["alpha"] = self.guided_filter(guide, pred).clamp(0, 1)
            if probes:
                outputs["guide"] = guide
        if probes:
            outputs["pred_before_gf"] = pred
        return outputs


def force_clicks(alpha: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
    """``alpha`` (B, 1, H, W) with 0 at background clicks (trimap channel 0) and 1 at foreground ones
    (channel 1); out of place, so gradients flow to the other pixels."""
    alpha = torch.where(trimap[:, :1] == 1, torch.zeros_like(alpha), alpha)
    return torch.where(trimap[:, 1:2] == 1, torch.ones_like(alpha), alpha)
