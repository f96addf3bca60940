"""Smoke test of benchmarks/bench_model_ft.py (slow: it fine-tunes the real model twice)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from optional import needs

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_model_ft.py"


@pytest.mark.slow
def test_bench_model_ft_writes_json(tmp_path, scifact_path):
    needs("peft")
    out = tmp_path / "m.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--max-records", "150", "--epochs", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=1500,
                          cwd=REPO / "benchmarks")
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    for name in ("scifact", "stdlib"):  # the bundled example runs on its rebuilt record texts
        got = res[name]
        assert "skipped" not in got and got["n_records"] == 150
        assert set(got["methods"]) == {"none", "adaptor", "nudge-m", "nudge-n", "full-ft", "lora"}
        assert got["methods"]["full-ft"]["trainable_parameters"] > got["methods"]["lora"]["trainable_parameters"]
        assert got["ratios"]["nudge_n_time_over_full_ft_time"] > 0
        assert got["ood"] == "k-means protocol"  # a cut corpus lacks the example's OOD answers
    assert "NUDGE-N time / full-ft time" in proc.stdout
