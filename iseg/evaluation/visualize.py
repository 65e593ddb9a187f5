"""Pictures of an interaction: image, ground truth, prediction and click markers."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from iseg.interaction.clicks import Click

POSITIVE_COLOR = (0, 220, 0)
NEGATIVE_COLOR = (230, 30, 30)


def draw_clicks(image: np.ndarray, clicks: Sequence[Click], radius: int | None = None) -> np.ndarray:
    """RGB uint8 copy of ``image`` with a filled, outlined disk per click (green +, red -)."""
    canvas = np.ascontiguousarray(image.copy())
    if radius is None:
        radius = max(3, round(min(image.shape[:2]) / 60))
    for click in clicks:
        color = POSITIVE_COLOR if click.is_positive else NEGATIVE_COLOR
        for y, x in click.anchor_points():  # a click's point; a box's corners (and IOG's inside point)
            center = (int(round(x)), int(round(y)))
            cv2.circle(canvas, center, radius, color, thickness=-1, lineType=cv2.LINE_AA)
            cv2.circle(canvas, center, radius, (255, 255, 255), thickness=1, lineType=cv2.LINE_AA)
    return canvas


def overlay_mask(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (30, 120, 255), alpha: float = 0.45) -> np.ndarray:
    """Blend a boolean mask over an RGB uint8 image."""
    out = image.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(color, np.float32)
    return out.clip(0, 255).astype(np.uint8)


def interaction_panel(image: np.ndarray, gt: np.ndarray, probs: np.ndarray, clicks: Sequence[Click], pred_thr: float = 0.49) -> np.ndarray:
    """Side-by-side RGB picture: ground truth overlay | prediction overlay with clicks."""
    gt_view = overlay_mask(image, gt == 1, color=(255, 200, 0))
    pred_view = draw_clicks(overlay_mask(image, probs > pred_thr), clicks)
    return np.concatenate([gt_view, pred_view], axis=1)
