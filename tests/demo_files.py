"""What the demo tests share: a small deterministic-weight checkpoint, test images, and a stand-in
network that takes clicks, scribbles and boxes (no such checkpoint exists yet)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from iseg.interaction.clicks import clicks_to_points
from iseg.interaction.prompts import Box, Click, Scribble
from iseg.models.inputs import ClickInputs

# RITM's HRNet-18s ITER-M layout (the smallest HRNet the loader builds), weights from a fixed seed.
NET_CONFIG = {
    "_target_": "iseg.models.hrnet_model.HRNetModel",
    "width": 18,
    "ocr_width": 48,
    "small": True,
    "use_rgb_conv": False,
    "use_disks": True,
    "norm_radius": 5,
    "use_leaky_relu": True,
    "with_prev_mask": True,
}


def demo_checkpoint(folder: Path) -> Path:
    """An iseg Lightning-layout checkpoint of the network above (written once per folder)."""
    path = folder / "demo_hrnet18s_seed0.ckpt"
    if not path.is_file():
        from iseg.models.hrnet_model import HRNetModel

        torch.manual_seed(0)
        net = HRNetModel(**{key: value for key, value in NET_CONFIG.items() if key != "_target_"})
        state = {f"net.{key}": value for key, value in net.state_dict().items()}
        torch.save({"state_dict": state, "hyper_parameters": {"net": NET_CONFIG}}, path)
    return path


def scene(height: int = 80, width: int = 120) -> np.ndarray:
    """A textured background with a bright disk and a dark square: something to click on."""
    rng = np.random.default_rng(0)
    image = rng.integers(60, 120, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    image[(yy - height * 0.45) ** 2 + (xx - width * 0.3) ** 2 < (height * 0.25) ** 2] = (240, 200, 60)
    image[int(height * 0.3) : int(height * 0.7), int(width * 0.6) : int(width * 0.85)] = (30, 60, 160)
    return image


def encoded(image: np.ndarray | Image.Image, fmt: str = "PNG", **save_args) -> bytes:
    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buffer, fmt, **save_args)
    return buffer.getvalue()


class AnchorPointsEncoder:
    """Test-only encoding that takes every prompt kind: a click, each point of a scribble and the
    centre of a box become click rows of the (B, 2N, 3) layout."""

    prompt_types = (Click, Scribble, Box)

    def __call__(self, prompt_lists, device):
        clicks = [[Click(y, x, p.is_positive) for p in prompts for y, x in _points(p)] for prompts in prompt_lists]
        return {"points": clicks_to_points(clicks, device=device)}


def _points(prompt) -> list[tuple[float, float]]:
    if isinstance(prompt, Box):  # the centre: unchanged by the flip view, unlike a corner
        return [((prompt.y0 + prompt.y1) / 2, (prompt.x0 + prompt.x1) / 2)]
    return prompt.anchor_points()


class AnchorInputs(ClickInputs):
    def __init__(self):
        super().__init__(prev_mask=False)
        self.encoders = (AnchorPointsEncoder(),)


class AnchorDiskNet(nn.Module):
    """Fast stand-in network for every prompt kind: logit +8 within 6 px of a positive anchor
    point unless a negative one is nearer than 6 px, -8 elsewhere."""

    radius = 6.0

    def default_inputs(self) -> AnchorInputs:
        return AnchorInputs()

    def forward(self, image: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]:
        batch, _, height, width = image.shape
        rows = torch.arange(height, dtype=image.dtype).view(1, 1, height, 1)
        cols = torch.arange(width, dtype=image.dtype).view(1, 1, 1, width)

        def near(rows_of_points: torch.Tensor) -> torch.Tensor:
            y = rows_of_points[..., 0].view(batch, -1, 1, 1)
            x = rows_of_points[..., 1].view(batch, -1, 1, 1)
            return ((((rows - y) ** 2 + (cols - x) ** 2) <= self.radius**2) & (y >= 0)).any(dim=1, keepdim=True)

        half = points.shape[1] // 2
        inside = near(points[:, :half]) & ~near(points[:, half:])
        return {"instances": inside.to(image.dtype) * 16 - 8}
