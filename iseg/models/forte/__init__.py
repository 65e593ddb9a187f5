"""Forte et al. (ICME 2020): ResNet-50 GN+WS network with a user encoder and a guided-filter output."""

from iseg.models.forte.model import ForteNet

__all__ = ["ForteNet"]
