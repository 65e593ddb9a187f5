"""FCFI (Focused and Collaborative Feedback Integration): RITM networks whose previous prediction
is corrected around the newest click (FFCM) and fused back into the features (CFFM).

Public classes: ``FCFIHRNetModel`` (iseg.models.fcfi.hrnet_model) and ``FCFIDeeplabModel``
(iseg.models.fcfi.deeplab_model). Their ``default_inputs()`` is ``FCFIInputs`` (iseg.models.fcfi.inputs); they
share the forward interface documented in ``iseg.models.fcfi.feedback_model``:
``forward(image, points, new_points, gate, is_training=None) -> dict``.
"""

from iseg.models.fcfi.deeplab_model import FCFIDeeplabModel
from iseg.models.fcfi.hrnet_model import FCFIHRNetModel

__all__ = ["FCFIDeeplabModel", "FCFIHRNetModel"]
