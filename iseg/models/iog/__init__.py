"""IOG (Inside-Outside Guidance, Zhang et al. CVPR 2020) and its interactive refinement branch.

Official plain-state-dict files (IOG_PASCAL_SBD.pth, IOG_PASCAL.pth, IOG_PASCAL_SBD_REFINEMENT.pth)
load through :func:`iseg.models.checkpoints.load_model`.
"""

from iseg.models.iog.network import IOGNetwork
from iseg.models.iog.refinement import IOGRefinementNetwork

__all__ = ["IOGNetwork", "IOGRefinementNetwork"]
