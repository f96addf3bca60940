"""Shared fixtures. Real datasets come from ../shared/datasets (CI has them at the same path)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def scifact_path() -> Path:
    path = SHARED / "scifact"
    assert path.is_dir(), f"{path} is missing: the real-data tests need ../shared/datasets"
    return path


@pytest.fixture(scope="session")
def scifact(scifact_path):
    from nudge_core.data import load_dataset

    return load_dataset(scifact_path)
