"""Smoke test of benchmarks/bench_engine.py: it runs end to end and writes the JSON it promises.

No timing thresholds: only that the keys are there and the measured times are positive.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_engine.py"


def test_bench_engine_quick_writes_json(tmp_path, scifact_path):
    out = tmp_path / "b.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--no-reference", "--repeats", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Targets:" in proc.stdout
    res = json.loads(out.read_text())
    assert set(res) >= {"meta", "scifact", "scale", "targets"}

    sci = res["scifact"]
    assert sci["n_records"] > 0 and sci["n_train"] > 0 and sci["n_val"] > 0
    assert set(sci["methods"]) == {"nudge-m", "nudge-n"}
    for row in sci["methods"].values():
        assert row["ours_seconds"] > 0
        assert row["gamma_ours"] >= 0
        assert set(row["protocols"]) == {"blocks", "alternating"}
        for proto in row["protocols"].values():
            assert len(proto["ours_all_seconds"]) == 1 and proto["ours_seconds"] > 0
        assert "reference_seconds" not in row  # --no-reference

    runs = res["scale"]["runs"]
    assert {(r["n_records"], r["method"], r["impl"]) for r in runs} == \
        {(10_000, "nudge-m", "ours"), (10_000, "nudge-n", "ours")}
    for r in runs:
        assert r["status"] == "ok", r["status"]
        assert r["fit_seconds"] > 0
        assert r["peak_rss_mib"] > 0 and r["baseline_rss_mib"] > 0 and r["corpus_mib"] > 0
        assert r["peak_over_corpus"] > 0
        assert r["gamma"] >= 0
    assert set(res["targets"]) == {"scifact_10x_faster", "1m_fit_within_60s",
                                   "1m_peak_within_2.5x_corpus"}
