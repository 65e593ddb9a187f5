"""Shared test fixtures and paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"

torch.set_num_threads(min(2, torch.get_num_threads()))


def require_shared_dataset(name: str) -> Path:
    """Path of a real evaluation set under ../shared/data, or skip the test saying why."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real dataset {name} not found at {path} (../shared/data is absent on this machine)")
    return path
