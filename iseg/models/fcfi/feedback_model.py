"""The forward pass FCFI networks share: RITM's click fusion plus the feedback (previous mask)
entering FFCM and CFFM, and the extra outputs those produce.

Interface (kept by FCFIHRNetModel and FCFIDeeplabModel; the FCFI predictor and training rely on it):

``forward(image, points, new_points, gate, is_training=None) -> dict``

- ``image`` (B, 4, H, W): RGB in [0, 1] and, as channel 3, the previous probability map (the feedback).
- ``points`` (B, 2N, 3) float, RITM's click rows (positives first, (-1, -1, -1) unused).
- ``new_points`` (B, 1, 3) long: the newest click (y, x, label), label 1 positive / 0 negative, in
  input pixels (truncated to integers like the reference).
- ``gate``: 0.0 on the first click (no previous mask), 1.0 afterwards; a float or a 0-dim tensor.
- ``is_training``: selects FFCM's soft training window (True) or the hard inference window
  (False); None follows ``self.training``.

Returns ``instances`` logits (B, 1, H, W) (and ``instances_aux`` for HRNet with aux),
``updated_feedback1`` (FFCM, probability-valued) and ``updated_feedback2`` (CFFM sigmoid), both
(B, 1, H, W), ``coord_features`` (the click encoding given to the network) and, on the training
path only, ``valid_masks``: FFCM's soft window (B, 1, h, w) at feature resolution.
"""

from __future__ import annotations

from typing import Any

import torch

from iseg.models.fcfi.inputs import FCFIInputs


class FeedbackModelMixin:
    """FCFI's ``forward`` on top of an ISModel subclass; the subclass provides ``feedback_backbone_forward``.

    Outputs are resized to the input bilinearly with align_corners=True, except where a subclass's
    ``output_align_corners`` says otherwise (DeepLab's ``updated_feedback1``, as in the reference).
    """

    def default_inputs(self) -> FCFIInputs:
        """FCFI's adapter: the newest click and the gate besides image + feedback and the clicks."""
        return FCFIInputs()

    def feature_refinement(self, inputs: dict[str, Any], mode: str) -> Any:
        """FCFI's feedback modules sit inside the feature path, so f-BRS has no split here (input BRS works)."""
        raise NotImplementedError(f"{type(self).__name__}: f-BRS (mode {mode!r}) is not defined for FCFI networks")

    output_align_corners = {"instances": True, "instances_aux": True, "updated_feedback1": True, "updated_feedback2": True}

    def forward(
        self,
        image: torch.Tensor,
        points: torch.Tensor,
        new_points: torch.Tensor,
        gate: float | torch.Tensor,
        is_training: bool | None = None,
    ) -> dict[str, torch.Tensor]:
        soft_window = self.training if is_training is None else bool(is_training)
        fused = self.fuse_clicks(image, points)
        outputs = self.feedback_backbone_forward(
            fused.backbone_input, fused.stem_features, fused.coord_features, fused.prev_mask, new_points, gate, soft_window
        )
        outputs = self.resize_outputs(outputs, fused.image.shape[2:])
        outputs["coord_features"] = fused.coord_features
        return outputs

    def feedback_backbone_forward(
        self,
        image: torch.Tensor,
        stem_features: torch.Tensor | None,
        click_maps: torch.Tensor,
        feedback: torch.Tensor,
        new_points: torch.Tensor,
        gate: float | torch.Tensor,
        soft_window: bool,
    ) -> dict[str, Any]:
        """Feature-resolution outputs: instances(, instances_aux), updated_feedback1/2(, valid_masks)."""
        raise NotImplementedError(f"{type(self).__name__} must implement feedback_backbone_forward")


def feedback_outputs(
    feedback1: torch.Tensor, window: torch.Tensor | None, feedback2: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The feedback entries of the output dict (``valid_masks`` only on the training path)."""
    outputs = {"updated_feedback1": feedback1, "updated_feedback2": feedback2}
    if window is not None:
        outputs["valid_masks"] = window
    return outputs
