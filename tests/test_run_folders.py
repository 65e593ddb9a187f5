"""Run folders: none for a run that never started; a sweep ends with a table of what each job returned."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from iseg.runtime import remove_unstarted_run_dir
from iseg.training.run import train
from tests.conftest import ROOT, compose_train_config


def _hydra_record(folder):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("seed: 42\n")


def test_only_a_folder_with_nothing_but_the_hydra_record_and_logs_is_removed(tmp_path):
    empty = tmp_path / "empty"
    _hydra_record(empty)
    (empty / "train.log").write_text("[..] threads: 1\n")
    assert remove_unstarted_run_dir(empty) and not empty.exists()

    started = tmp_path / "started"
    _hydra_record(started)
    (started / "checkpoints").mkdir()
    assert not remove_unstarted_run_dir(started) and (started / ".hydra").is_dir()
    assert not remove_unstarted_run_dir(tmp_path / "missing")


def test_a_run_that_fails_at_setup_leaves_no_folder(tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose_train_config(run_dir, ["data=folder", f"data.root={tmp_path / 'no_such_set'}"], tiny=False)
    _hydra_record(run_dir)  # what Hydra writes before calling train()
    with pytest.raises(Exception, match="no_such_set"):
        train(cfg)
    assert not run_dir.exists()


APP = """
import hydra

@hydra.main(version_base="1.3", config_path="conf", config_name="app")
def main(cfg):
    if cfg.x == "bad":
        raise ValueError("x must be a number")
    return {"val/noc90": float(cfg.x) * 2}

if __name__ == "__main__":
    main()
"""

APP_CONFIG = """
defaults:
  - _self_
  - hydra: default
x: 1
optimized_metric: val/noc90
paths: {log_dir: LOGS}
task_name: app
"""


@pytest.fixture
def sweep_app(tmp_path):
    (tmp_path / "conf" / "hydra").mkdir(parents=True)
    (tmp_path / "conf" / "hydra" / "default.yaml").write_text((ROOT / "conf" / "hydra" / "default.yaml").read_text())
    (tmp_path / "conf" / "app.yaml").write_text(APP_CONFIG.replace("LOGS", str(tmp_path / "logs")))
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    return tmp_path


def _sweep(app, *overrides):
    return subprocess.run(
        [sys.executable, "app.py", "-m", *overrides, f"hydra.sweep.dir={app / 'sweep'}"],
        cwd=app, capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )


def test_a_sweep_ends_with_a_summary_table(sweep_app):
    result = _sweep(sweep_app, "x=1,2.5")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("Sweep summary: 2 jobs")))
    header, _, first, second = lines[start + 1 : start + 5]
    assert header.split() == ["job", "overrides", "returned", "(val/noc90)"]
    assert first.split() == ["0", "x=1", "val/noc90:", "2"]
    assert second.split() == ["1", "x=2.5", "val/noc90:", "5"]
    assert (sweep_app / "sweep" / "summary.txt").read_text().startswith("Sweep summary: 2 jobs")
    assert json.loads((sweep_app / "sweep" / "job_returns" / "1.json").read_text())["return"] == {"val/noc90": 5.0}


def test_a_failed_job_is_in_the_summary(sweep_app):
    result = _sweep(sweep_app, "x=1,bad")
    assert result.returncode == 1
    assert "Sweep summary: 2 jobs, 1 failed" in result.stdout, result.stdout + result.stderr
    assert any(line.split()[:3] == ["1", "x=bad", "FAILED"] and "x must be a number" in line for line in result.stdout.splitlines())
