"""S2M (Scribble-to-Mask, MiVOS): the network, its input adapter, its loss and its initialisation."""

from iseg.models.s2m.network import S2MNet

__all__ = ["S2MNet"]
