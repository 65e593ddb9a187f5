"""Zoom-in at inference: crop the network input to the object and enlarge it (RITM's ``ZoomIn``).

From click ``skip_clicks + 1`` on, the region of interest (ROI) is the bounding box of the
previous prediction (probabilities > ``prob_thresh``) and of the positive clicks, enlarged by
``expansion_ratio`` around its centre, at least ``min_crop_size`` per side, clamped to the image.
The ROI is kept between clicks unless a positive click leaves it or the new box overlaps the old
one by less than ``recompute_thresh_iou``; keeping it lets the network see a stable view. The
crop (all channels, previous mask included) is resized so its longer side is ``target_size``
(or to exactly ``(h, w)`` when a pair is given); the probabilities go back into the ROI of an
all-zero full-size map, so everything outside the ROI is predicted background.

Reference behaviour kept on purpose (it moves published numbers):
- ``round`` is Python's (half to even) when the box is expanded and when the crop is resized;
- a click on the last ROI row/column counts as outside (``r >= rmax``);
- when the previous mask is empty the image is not cropped, but an ROI from an earlier click is
  not cleared, so the full-image output is squeezed into that old ROI on the way back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from iseg.inference.views import Frame, View
from iseg.interaction.prompts import Prompt

Box = tuple[int, int, int, int]
"""(rmin, rmax, cmin, cmax), inclusive pixel bounds."""


def bbox_from_mask(mask: torch.Tensor) -> Box | None:
    """Inclusive bounding box of the true pixels of a (H, W) mask, None when it has none."""
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    if rows.numel() == 0:
        return None
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def expand_bbox(box: Box, ratio: float, min_size: float | None = None) -> Box:
    """Scale a box around its centre to ``ratio`` x its size (at least ``min_size``), rounded half to even."""
    rmin, rmax, cmin, cmax = box
    rcenter, ccenter = 0.5 * (rmin + rmax), 0.5 * (cmin + cmax)
    height, width = ratio * (rmax - rmin + 1), ratio * (cmax - cmin + 1)
    if min_size is not None:
        height, width = max(height, min_size), max(width, min_size)
    return (
        int(round(rcenter - 0.5 * height)),
        int(round(rcenter + 0.5 * height)),
        int(round(ccenter - 0.5 * width)),
        int(round(ccenter + 0.5 * width)),
    )


def clamp_bbox(box: Box, height: int, width: int) -> Box:
    """Clip a box to the pixels of a ``height`` x ``width`` image."""
    return max(0, box[0]), min(height - 1, box[1]), max(0, box[2]), min(width - 1, box[3])


def bbox_iou(a: Box, b: Box) -> float:
    """Box IoU as the reference computes it: product of the row and column segment IoUs."""

    def segment_iou(lo1: int, hi1: int, lo2: int, hi2: int) -> float:
        intersection = max(0, min(hi1, hi2) - max(lo1, lo2) + 1)
        return intersection / max(1e-6, max(hi1, hi2) - min(lo1, lo2) + 1)

    return segment_iou(a[0], a[1], b[0], b[1]) * segment_iou(a[2], a[3], b[2], b[3])


def roi_output_size(box: Box, target_size: int | tuple[int, int]) -> tuple[int, int]:
    """Network-input size of a ROI: longer side = ``target_size`` (aspect kept), or the given pair."""
    height, width = box[1] - box[0] + 1, box[3] - box[2] + 1
    if isinstance(target_size, tuple):
        return target_size
    scale = target_size / max(height, width)
    return int(round(height * scale)), int(round(width * scale))


def crop_resize(
    image: torch.Tensor,
    box: Box,
    size: tuple[int, int],
    mode: str = "bilinear",
    align_corners: bool | None = True,
) -> torch.Tensor:
    """The (B, C, H, W) pixels of an inclusive ``box`` resized to ``size``; parts of the box outside the
    image are zeros (IOG's zero padding), so a box may reach past the image borders."""
    rmin, rmax, cmin, cmax = box
    height, width = int(image.shape[2]), int(image.shape[3])
    if rmin >= 0 and cmin >= 0 and rmax < height and cmax < width:
        region = image[:, :, rmin : rmax + 1, cmin : cmax + 1]
    else:
        region = image.new_zeros((*image.shape[:2], rmax - rmin + 1, cmax - cmin + 1))
        r0, r1, c0, c1 = max(rmin, 0), min(rmax, height - 1), max(cmin, 0), min(cmax, width - 1)
        if r0 <= r1 and c0 <= c1:
            region[:, :, r0 - rmin : r1 - rmin + 1, c0 - cmin : c1 - cmin + 1] = image[:, :, r0 : r1 + 1, c0 : c1 + 1]
    return F.interpolate(region, size=size, mode=mode, align_corners=align_corners)


def paste_resized(
    crop: torch.Tensor,
    box: Box,
    full: torch.Tensor | tuple[int, int],
    mode: str = "bilinear",
    align_corners: bool | None = True,
) -> torch.Tensor:
    """``crop`` (B, C, h, w) resized to the inclusive ``box`` and written into ``full`` (a map, or the
    (H, W) of an all-zero one); the part of the box outside the map is dropped."""
    rmin, rmax, cmin, cmax = box
    resized = F.interpolate(crop, size=(rmax - rmin + 1, cmax - cmin + 1), mode=mode, align_corners=align_corners)
    if not isinstance(full, torch.Tensor):
        full = crop.new_zeros((*crop.shape[:2], *full))
    height, width = int(full.shape[2]), int(full.shape[3])
    r0, r1, c0, c1 = max(rmin, 0), min(rmax, height - 1), max(cmin, 0), min(cmax, width - 1)
    if r0 <= r1 and c0 <= c1:
        full[:, :, r0 : r1 + 1, c0 : c1 + 1] = resized[:, :, r0 - rmin : r1 - rmin + 1, c0 - cmin : c1 - cmin + 1]
    return full


@dataclass(frozen=True)
class ZoomInState:
    """Everything ``ZoomIn`` carries between clicks; restoring it is what makes undo exact."""

    object_roi: Box | None
    prev_probs: torch.Tensor | None
    roi_shape: tuple[int, int] | None
    image_changed: bool


class ZoomIn(View):
    """Stateful zoom-in for one image: ``transform`` before the network, ``inv_transform`` after.

    As a :class:`~iseg.inference.views.View` it crops the image and the previous probabilities together
    and moves the prompts with ``prompt.map``; the ROI counts the anchor points of positive prompts
    (every prompt with ``all_clicks_in_roi``).

    Args:
        target_size: longer side of the resized crop (RITM: 400, DAVIS 600), or ``(h, w)``.
        skip_clicks: the first ``skip_clicks`` clicks see the whole image; -1 crops from the
            first click (the ROI is then the whole image until a mask exists: "fixed" mode).
        expansion_ratio: ROI = this x the object's bounding box (FCFI tunes it per dataset).
        min_crop_size: lower bound of the expanded ROI side, in pixels.
        recompute_thresh_iou: a new ROI replaces the kept one when their box IoU is below this.
        prob_thresh: probability above which a pixel belongs to the object for the ROI (0.5,
            not the protocol's 0.49).
        all_clicks_in_roi: FCFI's variant: negative clicks also enter the bounding box, and any
            click outside the kept ROI (not only a positive one) forces a new ROI.
    """

    output_space = "probs"

    def __init__(
        self,
        target_size: int | Sequence[int] = 400,
        skip_clicks: int = 1,
        expansion_ratio: float = 1.4,
        min_crop_size: float = 200,
        recompute_thresh_iou: float = 0.5,
        prob_thresh: float = 0.5,
        all_clicks_in_roi: bool = False,
    ):
        if isinstance(target_size, Sequence) and not isinstance(target_size, str):
            if len(target_size) != 2 or min(target_size) < 1:
                raise ValueError(f"target_size must be a positive int or an (h, w) pair, got {target_size!r}")
            target_size = (int(target_size[0]), int(target_size[1]))
        elif not isinstance(target_size, int) or target_size < 1:
            raise ValueError(f"target_size must be a positive int or an (h, w) pair, got {target_size!r}")
        if expansion_ratio <= 0:
            raise ValueError(f"expansion_ratio must be > 0, got {expansion_ratio}")
        if skip_clicks < -1:
            raise ValueError(f"skip_clicks must be >= -1, got {skip_clicks}")
        self.target_size = target_size
        self.skip_clicks = skip_clicks
        self.expansion_ratio = expansion_ratio
        self.min_crop_size = min_crop_size
        self.recompute_thresh_iou = recompute_thresh_iou
        self.prob_thresh = prob_thresh
        self.all_clicks_in_roi = all_clicks_in_roi
        self.reset()

    @classmethod
    def fixed(cls, size: int, **kwargs: Any) -> ZoomIn:
        """RITM's "fixed<N>" evaluation mode: crop from the first click, squash to N x N."""
        return cls(target_size=(size, size), skip_clicks=-1, **kwargs)

    @property
    def roi(self) -> Box | None:
        """The ROI in effect (inclusive bounds in full-image pixels), None before the first crop."""
        return self._object_roi

    @property
    def crop_shape(self) -> tuple[int, int] | None:
        """Network-input (h, w) of the last crop, None before the first one."""
        return self._roi_shape

    @property
    def image_changed(self) -> bool:
        """Whether the last ``transform`` chose a new ROI (BRS predictors re-encode the image then)."""
        return self._image_changed

    def reset(self) -> None:
        """Forget the ROI and the previous prediction (new image, or all clicks removed)."""
        self._object_roi: Box | None = None
        self._prev_probs: torch.Tensor | None = None
        self._roi_shape: tuple[int, int] | None = None
        self._image_changed = False

    def get_state(self) -> ZoomInState:
        return ZoomInState(self._object_roi, self._prev_probs, self._roi_shape, self._image_changed)

    def set_state(self, state: ZoomInState) -> None:
        self._object_roi, self._prev_probs = state.object_roi, state.prev_probs
        self._roi_shape, self._image_changed = state.roi_shape, state.image_changed

    def forward(self, frame: Frame) -> Frame:
        """Crop image and previous probabilities together (one resize) and move the prompts."""
        if len(frame.prompts) != 1:
            raise ValueError(f"ZoomIn works on one image, got {len(frame.prompts)} prompt lists")
        channels = frame.image.shape[1]
        both, prompts = self.transform(torch.cat((frame.image, frame.prev), dim=1), frame.prompts[0])
        return frame.with_tensors(both[:, :channels], both[:, channels:], [prompts])

    def inverse(self, output: torch.Tensor) -> torch.Tensor:
        return self.inv_transform(output)

    def transform(self, image: torch.Tensor, clicks: Sequence[Prompt]) -> tuple[torch.Tensor, list[Prompt]]:
        """Crop and resize the (1, C, H, W) network input and map the prompts into the crop."""
        if image.dim() != 4 or image.shape[0] != 1:
            raise ValueError(f"ZoomIn works on one image (1, C, H, W), got {tuple(image.shape)}")
        self._image_changed = False
        clicks = list(clicks)
        if len(clicks) <= self.skip_clicks:
            return image, clicks
        height, width = int(image.shape[2]), int(image.shape[3])

        current = self._object_roi_from_prediction(clicks) if self._prev_probs is not None else None
        if current is None:
            if self.skip_clicks >= 0:
                return image, clicks  # no mask yet: full image (an older ROI stays, see module doc)
            current = (0, height - 1, 0, width - 1)

        if (
            self._object_roi is None
            or not self._clicks_inside(self._object_roi, clicks)
            or bbox_iou(current, self._object_roi) < self.recompute_thresh_iou
        ):
            self._object_roi = current
            self._image_changed = True

        rmin, rmax, cmin, cmax = self._object_roi
        self._roi_shape = roi_output_size(self._object_roi, self.target_size)
        crop = crop_resize(image, self._object_roi, self._roi_shape)
        roi_size = (rmax - rmin + 1, cmax - cmin + 1)
        crop_size = self._roi_shape

        def to_crop(y: float, x: float) -> tuple[float, float]:
            # the reference's operation order (size * offset / extent): float coordinates match bit for bit
            return crop_size[0] * (y - rmin) / roi_size[0], crop_size[1] * (x - cmin) / roi_size[1]

        return crop, [c.map(to_crop) for c in clicks]

    def inv_transform(self, probs: torch.Tensor) -> torch.Tensor:
        """Put (1, 1, h, w) crop probabilities back into a full-size map that is zero outside the ROI."""
        if self._object_roi is None:
            self._prev_probs = probs
            return probs
        if probs.shape[0] != 1:
            raise ValueError(f"ZoomIn works on one image, got probabilities of shape {tuple(probs.shape)}")
        if self._prev_probs is not None:
            probs = paste_resized(probs, self._object_roi, tuple(self._prev_probs.shape[2:]))
        else:
            rmin, rmax, cmin, cmax = self._object_roi
            probs = F.interpolate(probs, size=(rmax - rmin + 1, cmax - cmin + 1), mode="bilinear", align_corners=True)
        self._prev_probs = probs
        return probs

    def needs_recompute(self) -> bool:
        """True when a prediction made without a crop should be redone with one.

        Only reachable with ``skip_clicks <= 0``: the first prediction had no mask to crop to;
        if its object box covers less than half the image, the reference predicts again
        (the new ROI now comes from that first prediction).
        """
        if self._prev_probs is None or self._object_roi is not None or self.skip_clicks > 0:
            return False
        possible = self._object_roi_from_prediction([])
        height, width = self._prev_probs.shape[2:]
        return possible is not None and bbox_iou(possible, (0, height - 1, 0, width - 1)) < 0.5

    def _object_roi_from_prediction(self, clicks: Sequence[Prompt]) -> Box | None:
        """Expanded, clamped box of the previous mask plus the clicks that count; None if the mask is empty."""
        mask = self._prev_probs[0, 0] > self.prob_thresh
        box = bbox_from_mask(mask)
        if box is None:
            return None
        rmin, rmax, cmin, cmax = box
        for y, x in self._counted_points(clicks):
            r, c = int(y), int(x)
            rmin, rmax, cmin, cmax = min(rmin, r), max(rmax, r), min(cmin, c), max(cmax, c)
        height, width = mask.shape
        box = expand_bbox((rmin, rmax, cmin, cmax), self.expansion_ratio, self.min_crop_size)
        return clamp_bbox(box, height, width)

    def _counted_points(self, prompts: Sequence[Prompt]) -> list[tuple[float, float]]:
        """Anchor points of the prompts that shape the ROI: positive ones (all with ``all_clicks_in_roi``)."""
        return [p for prompt in prompts if prompt.is_positive or self.all_clicks_in_roi for p in prompt.anchor_points()]

    def _clicks_inside(self, roi: Box, clicks: Sequence[Prompt]) -> bool:
        """The reference's test: half-open on the far side, so a click on row rmax is outside."""
        return all(roi[0] <= y < roi[1] and roi[2] <= x < roi[3] for y, x in self._counted_points(clicks))
