"""Files the demo tests share: a small deterministic-weight checkpoint and encoded test images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

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
