"""FFCM, FCFI's Focused Feedback Correction Module (reference spec §3.3).

The previous prediction (the *feedback*) is corrected locally around the newest click: an
encoder turns [image, click maps, feedback, backbone features] into embeddings, and inside a
window centred on the click each feedback value moves towards the click's label by the
cosine affinity between that pixel's embedding and the click's. Everything happens on the
stride-4 feature grid.

Two window shapes, as in the reference:
- training: a soft window (products of steep sigmoids, slope 10 per feature cell), returned so
  that the feedback loss can count only the pixels where it is exactly 1.0;
- inference: a hard box; outside it the feedback is left untouched. (The reference crops,
  corrects and pastes back; the affinity of a pixel does not depend on the crop, so selecting
  the box gives the same numbers.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from iseg.device_paths import require
from iseg.models.fcfi.blocks import ConvBNReLU, XConvBNReLU

_WINDOW_SLOPE = 10.0


def check_new_points(new_points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Validate (B, 1, 3) ``(y, x, label)`` clicks in input pixels; returned as (B, 3) long.

    Coordinates (and labels) are truncated to integers, as the reference does. The padding row
    (-1, -1) is accepted: it is the first "new click" of a training sample without positives.
    """
    if new_points.dim() != 3 or new_points.shape[1:] != (1, 3):
        raise ValueError(
            f"new_points must have shape (B, 1, 3) = one (y, x, label) per sample, got {tuple(new_points.shape)}"
        )
    points = new_points[:, 0].long()
    inside = (points[:, 0] >= 0) & (points[:, 0] < height) & (points[:, 1] >= 0) & (points[:, 1] < width)
    # A sample without positive clicks passes the padding row (-1, -1); the reference accepts it
    # and its truncating resize puts the click in feature cell (0, 0).
    padding = (points[:, 0] == -1) & (points[:, 1] == -1)
    if torch.compiler.is_exporting():  # a graph cannot raise; the predictor checks prompts before the network
        return points
    outside = f"lie outside the {height}x{width} input"
    require(
        inside | padding,
        f"new_points (y, x, label) {outside}",
        lambda: f"new_points (y, x, label) {points[~(inside | padding)].tolist()} {outside}",
    )
    return points


def window_box(points: torch.Tensor, height: int, width: int, expansion_ratio: float) -> torch.Tensor:
    """(B, 4) long [y0, x0, y1, x1] of the correction window in input pixels.

    The window is ``expansion_ratio`` times the input size, centred on the click, clipped to the image.
    """
    half_h = int(expansion_ratio * height / 2 + 0.5)
    half_w = int(expansion_ratio * width / 2 + 0.5)
    y, x = points[:, 0], points[:, 1]
    box = torch.stack((y - half_h, x - half_w, y + half_h, x + half_w), dim=1)
    low = torch.zeros(4, dtype=box.dtype, device=box.device)
    high = torch.tensor([height, width, height, width], dtype=box.dtype, device=box.device)
    return torch.minimum(torch.maximum(box, low), high)


def resize_box(box: torch.Tensor, height: int, width: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """Input-pixel box -> feature-grid box: floor for the top-left corner, ceil for the bottom-right."""
    scale = box.new_tensor([height, width, height, width], dtype=torch.float32)
    grid = box.new_tensor([grid_h, grid_w, grid_h, grid_w], dtype=torch.float32)
    scaled = box.float() / scale * grid
    resized = torch.cat((torch.floor(scaled[:, :2]), torch.ceil(scaled[:, 2:])), dim=1).long()
    return torch.minimum(resized, grid.long())


def resize_points(points: torch.Tensor, height: int, width: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """Click (y, x) in input pixels -> feature-grid cell, truncated (reference rounding)."""
    y = points[:, 0].float() / height * grid_h
    x = points[:, 1].float() / width * grid_w
    return torch.stack((y, x), dim=1).long()


def soft_window(box: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
    """(B, 1, h, w) window (s(y - y0) - s(y - y1)) * (s(x - x0) - s(x - x1)), s = sigmoid(10 t).

    Written as 1 / (1 + exp(-10 t)) like the reference, so the cells that come out as exactly
    1.0 in float32 (those the feedback loss keeps) are the same.
    """

    def step(t: torch.Tensor) -> torch.Tensor:
        return 1.0 / (1.0 + torch.exp(-_WINDOW_SLOPE * t))

    rows = torch.arange(grid_h, dtype=torch.float32, device=box.device).view(1, 1, grid_h, 1)
    cols = torch.arange(grid_w, dtype=torch.float32, device=box.device).view(1, 1, 1, grid_w)
    y0, x0, y1, x1 = (box[:, k].float().view(-1, 1, 1, 1) for k in range(4))
    return (step(rows - y0) - step(rows - y1)) * (step(cols - x0) - step(cols - x1))


def hard_window(box: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
    """(B, 1, h, w) bool: the cells inside [y0, y1) x [x0, x1)."""
    rows = torch.arange(grid_h, device=box.device).view(1, 1, grid_h, 1)
    cols = torch.arange(grid_w, device=box.device).view(1, 1, 1, grid_w)
    y0, x0, y1, x1 = (box[:, k].view(-1, 1, 1, 1) for k in range(4))
    return (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)


def click_affinity(embeddings: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) cosine similarity of every cell's embedding with the clicked cell's."""
    batch, channels, grid_h, grid_w = embeddings.shape
    flat = F.normalize(embeddings, p=2, dim=1).reshape(batch, channels, grid_h * grid_w)
    index = (cells[:, 0] * grid_w + cells[:, 1]).view(batch, 1, 1).expand(batch, channels, 1)
    clicked = torch.gather(flat, 2, index)  # (B, C, 1)
    return torch.einsum("bck,bcl->bkl", clicked, flat).reshape(batch, 1, grid_h, grid_w)


class FocusedCorrectionModule(nn.Module):
    """Corrects the feedback around the newest click; see the module docstring.

    ``in_ch``: backbone feature channels; ``aux_ch``: image (3) + click maps + feedback (1) channels;
    ``expansion_ratio``: window size as a fraction of the input size (released models: 0.3).
    """

    def __init__(
        self,
        in_ch: int,
        mid_ch: int,
        aux_ch: int = 6,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        expansion_ratio: float = 2.0,
    ):
        super().__init__()
        if expansion_ratio <= 0:
            raise ValueError(f"expansion_ratio must be > 0, got {expansion_ratio}")
        self.expansion_ratio = expansion_ratio
        self.info_encoder = nn.Sequential(
            ConvBNReLU(in_ch + aux_ch, mid_ch, norm_layer=norm_layer),
            XConvBNReLU(mid_ch, mid_ch, norm_layer),
            XConvBNReLU(mid_ch, mid_ch, norm_layer),
        )

    def forward(
        self,
        images: torch.Tensor,
        click_maps: torch.Tensor,
        features: torch.Tensor,
        feedback: torch.Tensor,
        new_points: torch.Tensor,
        soft: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """images (B,3,H,W), click_maps (B,c,H,W), features (B,C,h,w), feedback (B,1,H,W) probabilities,
        new_points (B,1,3) (y, x, label) in input pixels.

        Returns the corrected feedback (B,1,h,w) and, when ``soft``, the soft window (B,1,h,w).
        """
        height, width = feedback.shape[-2:]
        grid_h, grid_w = features.shape[-2:]
        points = check_new_points(new_points, height, width)
        box = resize_box(window_box(points, height, width, self.expansion_ratio), height, width, grid_h, grid_w)
        cells = resize_points(points, height, width, grid_h, grid_w)
        labels = points[:, 2].float().view(-1, 1, 1, 1)

        size = (grid_h, grid_w)
        images, click_maps, feedback = (
            F.interpolate(t, size=size, mode="bilinear", align_corners=True) for t in (images, click_maps, feedback)
        )
        embeddings = self.info_encoder(torch.cat((images, click_maps, feedback, features), dim=1))
        affinity = click_affinity(embeddings, cells)
        if soft:
            window = soft_window(box, grid_h, grid_w)
            corrected = (1 - window) * feedback + window * (affinity * labels + (1 - affinity) * feedback)
            return corrected, window
        corrected = (1 - affinity) * feedback + affinity * labels
        return torch.where(hard_window(box, grid_h, grid_w), corrected, feedback), None
