"""Shared fixtures. Real datasets come from ../shared/datasets (CI has them at the same path),
through :mod:`optional` (skip outside CI, fail in CI when missing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from optional import shared_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def scifact_path() -> Path:
    return shared_dataset("scifact")


@pytest.fixture(scope="session")
def scifact(scifact_path):
    from nudge_core.data import load_dataset

    return load_dataset(scifact_path)


@pytest.fixture()
def extra_method():
    """A method registered from a test (:class:`synthetic.Flipped`), removed afterwards."""
    from nudge_core import registry
    from synthetic import Flipped

    registry.register(registry.MethodSpec(
        "flipped", "flipped queries", "#000000", Flipped, changes="queries", metric="cos",
        objective="none", params=(registry.Param("strength", "--flip-strength", 1, 1, 10, "how much"),),
        default=False))
    yield "flipped"
    registry.unregister("flipped")
