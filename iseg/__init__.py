"""iseg: interactive image segmentation methods on one shared interaction core."""

__version__ = "0.1.0"
