"""The demo's settings: ``python -m iseg.demo checkpoint=PATH [key=value ...]`` maps onto these fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING


@dataclass
class DemoConfig:
    checkpoint: str = MISSING
    """An iseg (.ckpt) or official RITM / FCFI / f-BRS checkpoint (:func:`iseg.models.checkpoints.load_model`)."""
    host: str = "127.0.0.1"
    """Address to listen on; the default serves this computer only."""
    port: int = 8000
    settings: str = "ritm"
    """Predictor settings (conf/eval/predictor: ritm, fcfi, ...) as in evaluate.py and iseg.predict."""
    refiner: str = "none"
    """conf/eval/refiner: none, rgb_brs, distmap_brs, fbrs_a, fbrs_b, fbrs_c."""
    device: str = "cpu"
    backend: Optional[str] = None
    """torch, onnxruntime or openvino (the last two: an exported model on the CPU; a checkpoint is
    exported once at start); None: the checkpoint's own (onnxruntime for an .onnx file)."""
    max_side: int = 1600
    """Longer side (px) the page works at; larger images are scaled down, masks exported at full size."""
    max_pixels: int = 100_000_000
    """Larger images are refused (decoding them could exhaust memory)."""
