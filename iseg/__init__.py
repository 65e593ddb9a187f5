"""iseg: interactive image segmentation methods on one shared interaction core."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["predict"]


def __getattr__(name: str) -> Any:
    """``iseg.predict`` without importing torch at ``import iseg``."""
    if name == "predict":
        from iseg.inference.predict import predict

        return predict
    raise AttributeError(f"module 'iseg' has no attribute {name!r}")
