"""Shared fixtures. Real datasets come from ../shared/datasets (CI has them at the same path).

What only CI is sure to have (the real datasets, the ``reference`` and ``text`` extras) goes
through :func:`needs`: outside CI a missing piece skips its tests with the reason; in CI
(``CI=true``, set by ``.ci/run``) it fails them, so CI can never pass by skipping.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"


def _missing(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI must run this test, not skip it)")
    pytest.skip(reason)


def needs(module: str):
    """Import ``module`` or skip (fail in CI): for tests of an optional extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        _missing(f"needs the Python module {module!r} (pip install -e '.[test,reference,text]')")


def shared_dataset(name: str) -> Path:
    """``../shared/datasets/<name>`` or skip (fail in CI)."""
    path = SHARED / name
    if not path.is_dir():
        _missing(f"{path} is missing: the real-data tests need ../shared/datasets beside the checkout")
    return path


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
