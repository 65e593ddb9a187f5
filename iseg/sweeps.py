"""The results of a hyper-parameter search, trial by trial, with the best trial named.

:class:`StudyResults` is a Hydra callback (conf/hparams_search/*.yaml): at the end of a sweep it
reads what every job returned (``<sweep dir>/job_returns/*.json``, written by
:class:`iseg.runtime.SweepSummary`), writes ``<sweep dir>/study_results.yaml`` -- the metric, the
direction, every trial (job number, overrides, value, status, folder) and the best one -- and logs
the best trial. Optuna's own ``optimization_results.yaml`` holds the best parameters and value only.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf

from iseg.runtime import RETURNS_DIR

log = logging.getLogger(__name__)

RESULTS_FILE = "study_results.yaml"


def study_results(sweep_dir: str | Path, direction: str = "minimize", metric: str | None = None) -> dict[str, Any]:
    """The trials recorded under ``sweep_dir`` and the best completed one (``None`` when none completed)."""
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be minimize or maximize, got {direction!r}")
    sweep_dir = Path(sweep_dir)
    trials = []
    for file in sorted((sweep_dir / RETURNS_DIR).glob("*.json"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0):
        record = json.loads(file.read_text())
        value = record.get("return")
        completed = record.get("status") == "completed" and isinstance(value, (int, float)) and math.isfinite(value)
        trials.append({
            "number": record.get("num"),
            "overrides": record.get("overrides", []),
            "value": float(value) if completed else None,
            "status": "completed" if completed else record.get("status", "failed"),
            "dir": str(sweep_dir / str(record.get("num"))),
        })
    completed = [t for t in trials if t["value"] is not None]
    pick = min if direction == "minimize" else max
    best = pick(completed, key=lambda t: t["value"]) if completed else None
    return {"metric": metric, "direction": direction, "best_trial": best, "trials": trials}


class StudyResults(HydraCallback):
    """Writes ``study_results.yaml`` at the end of a sweep and logs its best trial."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweeper = config.hydra.get("sweeper", {})
        direction = str(sweeper.get("direction", "minimize"))
        sweep_dir = Path(str(config.hydra.sweep.dir))
        results = study_results(sweep_dir, direction, config.get("optimized_metric"))
        results["study"] = sweeper.get("study_name")
        OmegaConf.save(OmegaConf.create(results), sweep_dir / RESULTS_FILE)
        best = results["best_trial"]
        if best is None:
            log.warning("study %s: no trial completed (%s)", results["study"], sweep_dir / RESULTS_FILE)
            return
        log.info(
            "study %s: best trial %s, %s=%.4g (%s), folder %s; all trials in %s",
            results["study"], best["number"], results["metric"], best["value"], " ".join(best["overrides"]),
            best["dir"], sweep_dir / RESULTS_FILE,
        )
