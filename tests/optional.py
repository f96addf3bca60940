"""What only CI is sure to have: the real datasets in ../shared and the optional extras.

Outside CI a missing piece skips its tests with the reason; in CI (``CI=true``, set by
``.ci/run``) it fails them, so CI can never pass by skipping. (A plain module, not conftest:
``from conftest import`` is ambiguous once a sub-folder has its own conftest.py.)
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


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
