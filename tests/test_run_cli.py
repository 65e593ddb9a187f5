"""train.py as a person meets it: a quick --help with the training groups only, a quiet start,
progress lines in a log file, and user errors as short exact messages with no run folder left."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from hydra.errors import InstantiationException

from iseg.models.checkpoints import CheckpointError
from iseg.runtime import UserError, setup_phase, user_error_message, user_errors
from tests.conftest import ROOT

HELP_PROBE = """
import runpy, sys
sys.argv = ["train.py", "--help"]
try:
    runpy.run_path("train.py", run_name="__main__")
finally:
    print("torch imported:", "torch" in sys.modules)
"""


def test_help_lists_only_training_groups_without_loading_torch():
    result = subprocess.run([sys.executable, "-c", HELP_PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    groups = dict(re.findall(r"^(\w[\w/]*): (.+)$", result.stdout.split("== Config ==")[0], flags=re.MULTILINE))
    assert {"model", "data", "trainer", "callbacks", "logger", "experiment", "recipe", "paths"} <= set(groups), result.stdout
    assert "ritm_hrnet18s" in groups["model"] and "synthetic" in groups["data"]
    assert not [g for g in groups if g.startswith(("eval", "method", "hydra"))], groups
    assert "grabcut" not in result.stdout.split("== Config ==")[0]
    assert "torch imported: False" in result.stdout


def _instantiation_error(cause: BaseException, key: str = "data", target: str = "iseg.data.X") -> InstantiationException:
    try:
        raise cause
    except BaseException as error:
        wrapped = InstantiationException(f"Error in call to target '{target}':\n{error!r}\nfull_key: {key}")
        wrapped.__cause__ = error
        return wrapped


def test_user_error_messages():
    missing = FileNotFoundError("folder training data: not found: root folder /x.\nExpected layout: ...")
    assert user_error_message(_instantiation_error(missing)) == (
        "data (iseg.data.X): FileNotFoundError: folder training data: not found: root folder /x.\nExpected layout: ..."
    )
    assert user_error_message(CheckpointError("ckpt_path=a.ckpt does not fit")) == "CheckpointError: ckpt_path=a.ckpt does not fit"
    # ValueError / TypeError: user errors while a run is set up (config values), bugs otherwise
    assert user_error_message(ValueError("bad")) is None
    with pytest.raises(ValueError) as raised, setup_phase():
        raise ValueError("trainer.strategy=ddp cannot run inside a Hydra multirun")
    assert user_error_message(raised.value) == "ValueError: trainer.strategy=ddp cannot run inside a Hydra multirun"
    assert user_error_message(_instantiation_error(TypeError("width must be an int"), "model.net")).startswith(
        "model.net (iseg.data.X): TypeError: width must be an int"
    )
    assert user_error_message(RuntimeError("a bug")) is None
    assert user_error_message(_instantiation_error(AttributeError("a bug"))) is None
    with pytest.raises(UserError, match="^OSError: disk full$") as wrapped, user_errors():
        raise OSError("disk full")
    assert isinstance(wrapped.value.__cause__, OSError)  # HYDRA_FULL_ERROR=1 shows its traceback
    with pytest.raises(RuntimeError), user_errors():
        raise RuntimeError("a bug keeps its traceback")


def _train_py(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


NOISE = [
    "Skipping setting a default `ModelSummary`",  # Lightning's model-summary skip message
    "Tip:",  # Lightning's logger advertisement
    "litlogger",
    "LeafSpec",  # a deprecation inside Lightning's pytree helper
    "FLOPs",
    "v_num",
    "log_every_n_steps",
    "wandb",
    "Traceback",
]


@pytest.mark.slow
def test_quiet_start_and_progress_lines_in_a_log_file(tmp_path):
    result = _train_py(
        "trainer.fast_dev_run=true", "data.num_workers=0", f"hydra.run.dir={tmp_path}",
        "data.train_dataset.source.image_size=[64,96]", "data.train_dataset.augmentation.crop_size=[64,96]",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    for noise in NOISE:
        assert noise not in output, f"{noise!r} in the output:\n{output}"
    lines = [re.sub(r"^\[\d\d:\d\d:\d\d\] ", "", line) for line in result.stdout.splitlines()]
    assert any(re.fullmatch(r"threads: \d+ per process \(.*\)", line) for line in lines), output
    assert any(line.startswith("model: net (HRNetModel, 4.2 M)") for line in lines), output
    assert any(re.fullmatch(r"validation protocol, epoch 1: 1/1 samples, NoC@85 [\d.]+, NoC@90 [\d.]+ \(\d+ s\)", line) for line in lines), output
    assert any(re.fullmatch(r"epoch 1/1: train/loss [\d.]+, val/loss .*\(\d+ s\)", line) for line in lines), output
    assert "epoch 1/1: train/loss" in (tmp_path / "train.log").read_text()  # the log file has them too


@pytest.mark.slow
def test_user_errors_are_short_and_leave_no_run_folder(tmp_path):
    (tmp_path / "old_run" / "checkpoints").mkdir(parents=True)
    run_dir = tmp_path / "run"
    result = _train_py(f"ckpt_path={tmp_path / 'old_run'}", f"hydra.run.dir={run_dir}", "data.num_workers=0")
    assert result.returncode == 1
    assert f"IsADirectoryError: ckpt_path={tmp_path / 'old_run'} is a directory, not a checkpoint file" in result.stderr
    assert "Traceback" not in result.stderr and "\\n" not in result.stderr, result.stderr
    assert not run_dir.exists()

    result = _train_py("data=folder", f"data.root={tmp_path / 'no_set'}", f"hydra.run.dir={run_dir}")
    assert result.returncode == 1
    assert re.search(r"^data \(iseg\.data\.\S+\): \w+Error: folder training data: not found: root folder", result.stderr, flags=re.MULTILINE), result.stderr
    assert "Traceback" not in result.stderr and "\\n" not in result.stderr, result.stderr
    assert not run_dir.exists()
