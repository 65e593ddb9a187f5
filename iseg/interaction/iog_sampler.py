"""IOG's training items (s2m_iog_forte.md §2.3): one object, the crop around its box, its guidance.

For an (augmented) sample: one root object at random; its tight box enlarged by ``relax`` (30) px
on each side, not clipped (zero padding); image, object mask and void mask resized to ``size``
(512 x 512, aspect ratio not kept) with bilinear interpolation on pixel centres (the crop/resize
of the box-crop view, so training and inference see the same crops); the guidance heatmaps from
the resized mask (> 0.5). The item's gt is 1 where the resized mask is >= 0.5, -1 where the resized
void is > 0.5 (the reference's loss thresholds), else 0; the image is rounded to uint8 (the
reference keeps the float values: a difference of at most half a grey level).

A sample without objects gives the whole image resized, an all-zero gt and all-zero heatmaps
(as the reference's empty mask).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from iseg.data.sample import InstanceSample
from iseg.inference.zoom_in import crop_resize
from iseg.interaction.iog_guidance import CORNER_PAD, FWHM, mask_guidance


class IOGSampler:
    """The ``InteractionSampler`` of IOG: returns (gt, {"image": crop, "guidance": (2, h, w) float32})."""

    def __init__(self, size: Sequence[int] = (512, 512), relax: int = 30, pad: int = CORNER_PAD, fwhm: float = FWHM):
        if len(size) != 2 or min(size) < 16:
            raise ValueError(f"size must be an (h, w) pair of at least 16 px, got {size!r}")
        self.size = (int(size[0]), int(size[1]))
        self.relax = relax
        self.pad = pad
        self.fwhm = fwhm

    def __call__(self, sample: InstanceSample, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        height, width = sample.shape
        if len(sample) == 0:
            box, target = (0, height - 1, 0, width - 1), np.zeros(sample.shape, np.float32)
        else:
            roots = sample.root_objects
            target = (sample.get_object_mask(int(roots[rng.integers(len(roots))])) == 1).astype(np.float32)
            ys, xs = np.nonzero(target)
            box = (
                int(ys.min()) - self.relax,
                int(ys.max()) + self.relax,
                int(xs.min()) - self.relax,
                int(xs.max()) + self.relax,
            )
        planes = np.concatenate(
            [sample.image.astype(np.float32), target[..., None], sample.ignore_mask[..., None].astype(np.float32)], axis=2
        )
        crop = crop_resize(torch.from_numpy(planes).permute(2, 0, 1)[None], box, self.size, "bilinear", False)[0].numpy()
        image = np.clip(np.rint(crop[:3].transpose(1, 2, 0)), 0, 255).astype(np.uint8)
        gt = np.where(crop[4] > 0.5, -1, (crop[3] >= 0.5).astype(np.int32)).astype(np.int32)
        guidance = mask_guidance(crop[3] > 0.5, self.pad, self.fwhm)
        return gt, {"image": image, "guidance": guidance}
