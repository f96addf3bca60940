from __future__ import annotations

import numpy as np
import pytest

from nudge_core.significance import paired_comparison


def test_clear_improvement_is_significant_and_ci_covers_delta():
    rng = np.random.default_rng(0)
    before = rng.uniform(0, 1, 300)
    after = np.clip(before + 0.1 + 0.05 * rng.standard_normal(300), 0, 1)
    out = paired_comparison(before, after)
    assert out["ci_low"] < out["delta"] < out["ci_high"]
    assert out["ci_low"] > 0 and out["p_value"] < 0.01
    assert out["wins"] + out["losses"] + out["ties"] == 300


def test_no_difference_is_not_significant():
    rng = np.random.default_rng(1)
    before = rng.uniform(0, 1, 200)
    after = before + rng.normal(0, 0.1, 200)
    after -= after.mean() - before.mean()
    out = paired_comparison(before, after)
    assert out["p_value"] > 0.5 and out["ci_low"] < 0 < out["ci_high"]


def test_identical_runs():
    x = np.array([0.2, 0.5, 1.0])
    out = paired_comparison(x, x)
    assert out == pytest.approx({**out, "delta": 0.0, "p_value": 1.0, "ties": 3})


def test_shape_mismatch():
    with pytest.raises(ValueError, match="one shape"):
        paired_comparison(np.zeros(3), np.zeros(4))
