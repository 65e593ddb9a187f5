"""scripts/benchmark_gpu_train.py runs (tiny CPU mode) and reports both simulations."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_tiny_cpu_run_reports_every_row(capsys):
    spec = importlib.util.spec_from_file_location("benchmark_gpu_train", ROOT / "scripts" / "benchmark_gpu_train.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rows = script.main(["--device", "cpu", "--tiny", "--models", "ritm_hrnet18s", "--threads", "1"])
    assert [(r["model"], r["batch"], r["simulation"]) for r in rows] == [("ritm_hrnet18s", 2, "host"), ("ritm_hrnet18s", 2, "device")]
    for row in rows:
        assert row["samples_s"] > 0 and 0 <= row["click_share"] <= 1 and row["gpu_busy"] is None
        assert (row["click_ms"] > 0) == (row["click_passes"] > 0)  # the module's samplers are the timed ones
        assert row["host_reads"] == 0, row["host_reads_at"]  # the step as a GPU runs it reads nothing back
    assert sum(row["click_passes"] for row in rows) > 0
    out = capsys.readouterr().out
    assert "click share" in out and "GPU busy" in out and "host reads" in out and out.count("ritm_hrnet18s") == 2


@pytest.mark.slow
def test_a_failing_row_and_a_spent_budget_leave_the_other_rows_and_the_files(tmp_path, capsys):
    """What a short GPU lease needs: a failure is a row, no row starts past the budget, files after each row."""
    spec = importlib.util.spec_from_file_location("benchmark_gpu_train", ROOT / "scripts" / "benchmark_gpu_train.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    common = ["--device", "cpu", "--tiny", "--models", "ritm_hrnet18s", "--threads", "1", "--simulations", "device"]
    rows = script.main([*common, "--compile", "no-such-mode", "none", "--out", str(tmp_path)])
    assert rows[0]["error"].startswith("ValueError: trainer.compile: Unrecognized mode=no-such-mode")
    assert rows[1]["compile"] == "none" and rows[1]["samples_s"] > 0 and "error" not in rows[1]
    saved = json.loads((tmp_path / "gpu_train.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(rows)) and "torch" in saved["environment"]
    table = (tmp_path / "gpu_train.md").read_text()
    assert "failed: ValueError" in table and table.count("ritm_hrnet18s") == 2
    rows = script.main([*common, "--budget-s", "0"])
    assert rows == [{"model": "ritm_hrnet18s", "batch": 2, "simulation": "device", "compile": "none", "skipped": "budget of 0 s spent"}]
    assert "not run: budget of 0 s spent" in capsys.readouterr().out
