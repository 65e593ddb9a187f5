"""IOG's simulated user for the protocol loop: the box and inside point from the GT, then correction clicks.

First prompt: an :class:`~iseg.interaction.prompts.InsideOutside` prompt: the object's tight box and
the inside point the reference derives from the GT (the most interior pixel of the object in the
512 x 512 crop around box + ``relax``, mapped back to image pixels, so the box-crop view maps it
onto the reference's pixel). Later prompts: the refinement rule
(:func:`~iseg.interaction.iog_guidance.refinement_click`) on the full-resolution masks, ignore
pixels excluded. Corner points differ from the reference's by at most a pixel: they come from the
mapped box, the reference takes them from the resized GT.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from iseg.inference.zoom_in import crop_resize
from iseg.interaction.iog_guidance import (
    LabelRule,
    check_label_rule,
    inside_point,
    refinement_click,
)
from iseg.interaction.prompts import Box, Click, InsideOutside, Prompt


class IOGRobot:
    """Box + inside point from the GT, then refinement clicks (``label_rule`` as the refinement network)."""

    def __init__(self, size: Sequence[int] = (512, 512), relax: int = 30, label_rule: LabelRule = "correct"):
        self.size = (int(size[0]), int(size[1]))
        self.relax = relax
        self.label_rule = check_label_rule(label_rule)
        self._gt: np.ndarray | None = None
        self._history: list[Prompt] = []

    def start(self, gt: np.ndarray) -> None:
        gt = np.asarray(gt)
        ys, xs = np.nonzero(gt == 1)
        if len(ys) == 0:
            raise ValueError(f"IOGRobot: the gt of shape {gt.shape} has no object pixel (value 1): no box to draw")
        self._gt = gt
        self._history = []
        box = Box(int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max()))
        self._first = InsideOutside(box, self._inside_click(gt, box))

    def _inside_click(self, gt: np.ndarray, box: Box) -> Click:
        """The reference's inside point (found in the crop) as image coordinates."""
        rmin, rmax = int(box.y0) - self.relax, int(box.y1) + self.relax
        cmin, cmax = int(box.x0) - self.relax, int(box.x1) + self.relax
        mask = torch.from_numpy((gt == 1).astype(np.float32))[None, None]
        crop = crop_resize(mask, (rmin, rmax, cmin, cmax), self.size, "bilinear", False)[0, 0].numpy() > 0.5
        if not crop.any():  # an object thinner than the crop's pixels: its centre pixel
            return Click(float(np.mean([box.y0, box.y1])), float(np.mean([box.x0, box.x1])), True)
        y, x = inside_point(crop)
        scale_y, scale_x = self.size[0] / (rmax - rmin + 1), self.size[1] / (cmax - cmin + 1)
        image_y = min(max((y + 0.5) / scale_y + rmin - 0.5, box.y0), box.y1)
        image_x = min(max((x + 0.5) / scale_x + cmin - 0.5, box.x0), box.x1)
        return Click(image_y, image_x, True)

    def next(self, pred_mask: np.ndarray) -> Prompt:
        if self._gt is None:
            raise RuntimeError("call start(gt) before asking the robot for a prompt")
        if not self._history:
            prompt: Prompt = self._first
        else:
            click = refinement_click(pred_mask, self._gt == 1, self.label_rule, valid=self._gt != -1)
            prompt = click if click is not None else self._first.inside  # nothing to correct: confirm the object
        self._history.append(prompt)
        return prompt

    @property
    def history(self) -> list[Prompt]:
        return list(self._history)
