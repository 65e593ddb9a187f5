"""The IoU-vs-clicks picture of an evaluation (matplotlib's Agg canvas, no GUI, no pyplot state).

Under early stopping a sample has no IoU after the click that reached the target; the curve
keeps that sample's last IoU for the later clicks (the user stopped: the mask stays). Without
early stopping (``target_iou=1.01``) this is exactly the reference's mIoU@k curve. The plotted
values are also stored in the PNG as the text entry ``iou_curves`` (JSON), so that the picture
can be checked against results.json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PNG_TEXT_KEY = "iou_curves"


def held_iou_curve(iou_arrays: Sequence[np.ndarray], max_clicks: int) -> np.ndarray:
    """Mean IoU after clicks 1..max_clicks (float64), a stopped sample holding its last IoU."""
    if not iou_arrays:
        raise ValueError("iou_arrays is empty: no sample was evaluated")
    held = np.empty((len(iou_arrays), max_clicks), dtype=np.float64)
    for row, ious in zip(held, iou_arrays):
        ious = np.asarray(ious, dtype=np.float32)
        if not 1 <= len(ious) <= max_clicks:
            raise ValueError(f"a sample has {len(ious)} IoUs, expected 1..{max_clicks}")
        row[: len(ious)] = ious
        row[len(ious) :] = ious[-1]
    return held.mean(axis=0)


def plot_iou_curves(
    curves: Mapping[str, np.ndarray],
    path: Path,
    target_iou: float | None = None,
    thresholds: Sequence[float] = (0.85, 0.90),
) -> Path:
    """Write one line per set (mean IoU vs. click) with the NoC thresholds drawn; returns ``path``."""
    if not curves:
        raise ValueError("no curve to plot")
    figure = Figure(figsize=(6.4, 4.4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, curve in curves.items():
        clicks = np.arange(1, len(curve) + 1)
        axes.plot(clicks, curve, marker="o", markersize=3, label=name)
    for threshold in thresholds:
        axes.axhline(threshold, color="0.6", linestyle="--", linewidth=0.8)
    longest = max(len(curve) for curve in curves.values())
    axes.set_xlim(0.5, longest + 0.5)
    axes.set_xticks(range(1, longest + 1, 1 if longest <= 20 else 5))
    axes.set_ylim(0.0, 1.0)
    axes.set_xlabel("clicks")
    stop = "" if target_iou is None or target_iou > 1 else f" (stopped samples keep their IoU, target {target_iou:g})"
    axes.set_ylabel("mean IoU")
    axes.set_title(f"IoU vs. clicks{stop}", fontsize=10)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    values = {name: [float(v) for v in curve] for name, curve in curves.items()}
    path = Path(path)
    figure.savefig(path, format="png", metadata={PNG_TEXT_KEY: json.dumps(values)})
    return path


def read_png_curves(path: Path) -> dict[str, list[float]]:
    """The curve values stored in a PNG written by :func:`plot_iou_curves`."""
    from PIL import Image

    with Image.open(path) as image:
        text = getattr(image, "text", {}).get(PNG_TEXT_KEY)
    if text is None:
        raise ValueError(f"{path} has no '{PNG_TEXT_KEY}' entry: not written by plot_iou_curves")
    return json.loads(text)
