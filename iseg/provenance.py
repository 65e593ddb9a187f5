"""What produced a result: package versions, the git commit of the code, the full config.

Recorded in every training checkpoint (``checkpoint['provenance']``) and in evaluate.py's
``results.json`` (``settings.provenance``), so a number can be traced to the code and settings behind it.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

# the distributions whose versions change results (the package name as pip knows it)
PACKAGES = (
    "iseg", "torch", "torchvision", "lightning", "torchmetrics", "timm", "numpy", "scipy",
    "opencv-python-headless", "albumentations", "pycocotools", "hydra-core", "omegaconf", "pillow",
)


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None when it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.lru_cache(maxsize=None)
def git_commit(path: str | None = None) -> dict[str, Any] | None:
    """``{commit, dirty}`` of the git checkout holding ``path`` (iseg's own source by default);
    None when the code is not in a git checkout (an installed wheel) or git is missing."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())} if commit else None


def provenance(config: Any = None) -> dict[str, Any]:
    """Versions, git commit, Python and (when given) the full resolved config as plain data."""
    record: dict[str, Any] = {
        "packages": package_versions(),
        "git": git_commit(),
        "python": platform.python_version(),
    }
    if config is not None:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(config, (DictConfig, ListConfig)):
            try:
                config = OmegaConf.to_container(config, resolve=True)
            except Exception:  # an interpolation that needs Hydra's runtime: the config as written
                config = OmegaConf.to_container(config, resolve=False)
        record["config"] = config
    return record
