"""Cluster launchers for ``train.py -m`` (conf/hydra/launcher/submitit_slurm.yaml: one SLURM task per GPU).

That file replaces hydra-submitit-launcher's own ``submitit_slurm`` option with the same fields, so
Hydra validates it against the plugin's schema of the same name and warns that this matching is
deprecated; :func:`quiet_schema_matching` drops that one warning.
"""

from __future__ import annotations

import warnings


def quiet_schema_matching() -> None:
    """Ignore Hydra's deprecation warning for conf/hydra/launcher/submitit_slurm.yaml (only that file)."""
    warnings.filterwarnings(
        "ignore", message=r"\s*'hydra/launcher/submitit_slurm' is validated against ConfigStore schema", category=UserWarning
    )
