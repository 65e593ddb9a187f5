"""threads=: how many intra-op threads a training process uses, chosen before the model is built."""

from __future__ import annotations

import cv2
import pytest
import torch

from iseg import runtime
from iseg.runtime import resolve_threads, thread_settings
from tests.conftest import compose_train_config


@pytest.fixture
def cpus(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)

    def set_cpus(count: int, load: float) -> None:
        monkeypatch.setattr(runtime, "available_cpus", lambda: count)
        monkeypatch.setattr(runtime.os, "getloadavg", lambda: (load, load, load))

    return set_cpus


def test_auto_gives_one_thread_on_a_small_machine(cpus):
    cpus(2, 1.1)  # another CPU-bound process
    threads, reason = resolve_threads("auto")
    assert threads == 1 and "2 CPUs" in reason
    cpus(2, 0.0)  # idle now, but a second thread would cost 20x as soon as anything else runs
    assert resolve_threads("auto")[0] == 1


def test_auto_leaves_busy_cores_to_their_processes(cpus):
    cpus(8, 0.1)
    assert resolve_threads("auto")[0] == 8
    cpus(8, 2.2)
    assert resolve_threads("auto")[0] == 6
    assert resolve_threads("auto", processes=2)[0] == 3  # two DDP processes share the free cores
    assert resolve_threads("auto", processes=4)[0] == 1  # 2 CPUs per process
    cpus(8, 30.0)
    assert resolve_threads("auto")[0] == 1  # never fewer than one


def test_auto_respects_omp_num_threads(cpus, monkeypatch):
    cpus(8, 0.0)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads("auto") == (3, "auto: OMP_NUM_THREADS")


def test_explicit_and_default_settings():
    assert resolve_threads(4)[0] == 4
    assert resolve_threads("2")[0] == 2
    assert resolve_threads(None)[0] is None
    with pytest.raises(ValueError, match="threads='many'"):
        resolve_threads("many")
    with pytest.raises(ValueError, match="threads=0"):
        resolve_threads(0)


def test_thread_settings_apply_and_restore_torch_and_opencv():
    torch_before, cv2_before = torch.get_num_threads(), cv2.getNumThreads()
    with thread_settings(1) as threads:
        assert threads == 1
        assert torch.get_num_threads() == 1
        assert cv2.getNumThreads() == 1  # what forked loader workers inherit
    assert torch.get_num_threads() == torch_before and cv2.getNumThreads() == cv2_before
    with thread_settings(None):
        assert torch.get_num_threads() == torch_before  # null: torch's own default, untouched


def test_train_yaml_defaults_to_auto_and_train_applies_it_before_building(tmp_path, monkeypatch):
    assert compose_train_config(tmp_path).threads == "auto"
    cfg = compose_train_config(tmp_path, ["threads=1"])
    seen = {}

    def fake_train(cfg):
        seen["threads"] = torch.get_num_threads()  # what building the model and training would use
        return 1.0

    from iseg.training import run

    monkeypatch.setattr(run, "_train", fake_train)
    assert run.train(cfg) == 1.0
    assert seen["threads"] == 1


def test_processes_per_node_from_the_trainer_config(tmp_path):
    from iseg.training.run import _processes_per_node

    assert _processes_per_node(compose_train_config(tmp_path)) == 1
    assert _processes_per_node(compose_train_config(tmp_path, ["trainer=ddp", "trainer.devices=4"])) == 4
