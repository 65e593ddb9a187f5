"""Export of trained networks for use without PyTorch: ``python -m iseg.export checkpoint=PATH format=onnx``."""

from iseg.export.onnx import ExportError, export_onnx

__all__ = ["ExportError", "export_onnx"]
