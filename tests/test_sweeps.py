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

# conf/hydra/launcher/submitit_slurm.yaml replaces the plugin's option of that name (see iseg/launchers.py)
pytestmark = pytest.mark.filterwarnings(
    r"ignore:\s*'hydra/launcher/submitit_slurm' is validated against ConfigStore schema:UserWarning"
)

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


@pytest.mark.slow
def test_submitit_local_runs_two_jobs(tmp_path):
    """The local double of hydra/launcher=submitit_slurm: each job a process started by submitit."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    process = _run(["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5", "seed=1,2"], tmp_path)
    assert process.returncode == 0, process.stderr[-4000:]
    sweep = tmp_path / "sweep"
    for job in (0, 1):
        assert (sweep / str(job) / "checkpoints" / "last.ckpt").is_file(), sorted(p.name for p in sweep.rglob("*"))
        record = json.loads((sweep / "job_returns" / f"{job}.json").read_text())
        assert record["status"] == "completed" and record["overrides"][0] == f"seed={job + 1}"
    assert list((sweep / ".submitit").glob("*/*_result.pkl")), "the jobs ran through submitit"


def test_submitit_slurm_asks_one_task_per_gpu(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from omegaconf import OmegaConf

    cfg = compose_train_config(tmp_path, ["hydra/launcher=submitit_slurm", "trainer=ddp", "trainer.devices=8",
                                          "trainer.num_nodes=2"], tiny=False)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 8, 8)


def test_ddp_inside_a_multirun_is_refused_unless_submitit_starts_the_ranks(tmp_path):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import read_write

    from iseg.training.run import _refuse_multirun_ddp

    def multirun(overrides):
        cfg = compose_train_config(tmp_path, ["trainer=ddp", *overrides], tiny=False)
        with read_write(cfg.hydra):
            cfg.hydra.mode = RunMode.MULTIRUN
        HydraConfig.instance().set_config(cfg)
        return cfg

    with pytest.raises(ValueError, match="cannot run inside a Hydra multirun"):
        _refuse_multirun_ddp(multirun([]))
    _refuse_multirun_ddp(multirun(["hydra/launcher=submitit_slurm", "trainer.devices=2"]))  # SLURM tasks are the ranks
