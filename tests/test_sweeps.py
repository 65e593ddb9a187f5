"""Hyper-parameter search and cluster launch from the command line: an Optuna study of two short
trials (hparams_search=ritm_optuna) and two jobs through submitit's local launcher (the test
double of hydra/launcher=submitit_slurm)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from iseg.sweeps import study_results
from tests.conftest import ROOT, TINY_OVERRIDES, compose_train_config

SHORT = [*TINY_OVERRIDES, "data.train_dataset.epoch_len=32", "++trainer.limit_train_batches=1", "threads=1"]


def _run(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    command = [sys.executable, "train.py", "-m", *args, *SHORT, f"paths.log_dir={tmp_path / 'logs'}",
               f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
def test_optuna_study_of_two_trials_names_the_best(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    process = _run(["hparams_search=ritm_optuna", "hydra.sweeper.n_trials=2"], tmp_path)
    assert process.returncode == 0, process.stderr[-4000:]
    sweep = tmp_path / "sweep"
    optuna_best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    results = yaml.safe_load((sweep / "study_results.yaml").read_text())
    assert results["metric"] == "val/noc90" and results["direction"] == "minimize"
    assert [t["number"] for t in results["trials"]] == [0, 1] and all(t["status"] == "completed" for t in results["trials"])
    values = [t["value"] for t in results["trials"]]
    best = results["best_trial"]
    assert best["value"] == min(values) == optuna_best["best_value"]
    # the best trial's overrides are Optuna's best parameters, and its folder is the job's
    assert {o.split("=")[0] for o in best["overrides"]} >= set(optuna_best["best_params"])
    for key, value in optuna_best["best_params"].items():
        assert f"{key}={value}" in best["overrides"]
    assert (sweep / str(best["number"]) / "checkpoints").is_dir()
    lrs = {o for t in results["trials"] for o in t["overrides"] if o.startswith("model.optimizer.lr=")}
    assert len(lrs) == 2, "the two trials sample different learning rates"
    assert "best trial" in process.stderr + process.stdout


def test_study_results_pick_by_direction_and_skip_failed_trials(tmp_path):
    returns = tmp_path / "job_returns"
    returns.mkdir()
    for num, value, status in ((0, 2.5, "completed"), (1, 1.5, "completed"), (2, "ValueError: x", "failed")):
        (returns / f"{num}.json").write_text(json.dumps({"num": num, "overrides": [f"a={num}"], "status": status, "return": value}))
    assert study_results(tmp_path, "minimize")["best_trial"]["number"] == 1
    assert study_results(tmp_path, "maximize")["best_trial"]["number"] == 0
    assert study_results(tmp_path)["trials"][2]["status"] == "failed"
    with pytest.raises(ValueError, match="direction must be minimize or maximize"):
        study_results(tmp_path, "lowest")


def test_hparams_search_config_composes(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cfg = compose_train_config(tmp_path, ["hparams_search=ritm_optuna"], tiny=False)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "minimize"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == 1234
    assert cfg.optimized_metric == "val/noc90"
    assert set(sweeper.params) == {"model.optimizer.lr", "data.batch_size", "model.max_num_next_clicks",
                                   "data.train_dataset.sampler.max_num_points", "data.train_dataset.sampler.prob_gamma"}
