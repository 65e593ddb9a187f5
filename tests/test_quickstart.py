"""The README's first command: `python train.py` with no arguments, end to end (about 5 minutes)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_train_py_without_arguments_improves_on_the_untrained_network(tmp_path):
    result = subprocess.run(
        [sys.executable, "train.py", f"hydra.run.dir={tmp_path}", "trainer.enable_progress_bar=false"],
        cwd=ROOT, capture_output=True, text=True, timeout=1500,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    table = dict(
        (name, (float(before), float(after)))
        for name, before, after in re.findall(r"^val/(\w+)\s+([\d.]+)\s+([\d.]+)\s*$", output, flags=re.M)
    )
    assert {"noc85", "noc90", "miou5"} <= set(table), output[-3000:]
    assert table["noc85"][0] == 20.0 and table["noc90"][0] == 20.0  # the untrained network never gets there
    assert table["noc85"][1] <= 18.5 and table["noc90"][1] <= 19.0, table
    assert table["miou5"][1] >= table["miou5"][0] + 0.3, table
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert len(list((tmp_path / "checkpoints").glob("epoch_*.ckpt"))) == 1
