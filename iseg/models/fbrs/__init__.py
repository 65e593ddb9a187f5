"""f-BRS (feature backpropagating refinement) networks: RITM-lineage networks with f-BRS's click
fusion, as released with the paper (SamsungLabs/fbrs_interactive_segmentation, spec §1.5).

Public classes: ``FBRSHRNetModel`` (HRNet-W18/W32/W48 + OCR, iseg.models.fbrs.hrnet_model) and
``FBRSDeeplabModel`` (DeepLabV3+ on ResNet-34/50/101, iseg.models.fbrs.deeplab_model). Both take
``forward(image, points)`` with RGB in [0, 1] (normalised inside with ImageNet mean/std) and
(B, 2N, 2+) clicks, encode the clicks as tanh distance maps (R = 260), fuse them with the image
through f-BRS's ``rgb_conv`` and take no previous mask (``default_inputs()`` is
``ClickInputs(prev_mask=False)``). Their state dicts have the official keys, so the released
plain-state-dict files load through ``iseg.models.checkpoints.load_model``.
"""

from iseg.models.fbrs.deeplab_model import FBRSDeeplabModel
from iseg.models.fbrs.hrnet_model import FBRSHRNetModel

__all__ = ["FBRSDeeplabModel", "FBRSHRNetModel"]
