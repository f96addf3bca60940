"""Smoke test of benchmarks/bench_serving.py: it runs end to end and writes the JSON it promises.

No timing thresholds: only that the keys are there and the measured numbers are positive.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_serving.py"


def test_bench_serving_quick_writes_json(tmp_path):
    out = tmp_path / "s.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "gain kept" in proc.stdout
    res = json.loads(out.read_text())
    assert set(res) == {"meta", "datasets"}
    assert set(res["datasets"]) == {"stdlib", "synthetic-5000"}
    std = res["datasets"]["stdlib"]
    assert list(std["serving"]) == ["exact", "int8", "hnsw:M=16,ef=32"]
    for entry in std["serving"].values():
        assert entry["bytes_per_record"] > 0 and entry["query_ms"] > 0 and entry["latency_ms"] > 0
        assert "ood" in entry["methods"]["nudge-n"]
        assert "renormalized" in entry["methods"]["nudge-m"]
    assert [r["ef"] for r in std["ann_sweep"]["hnsw"]] == [16, 32, 64, 128, 256]
    assert all(0 <= r["overlap@10"] <= 1 for r in std["ann_sweep"]["hnsw"] + std["ann_sweep"]["ivf"])
    threads = std["threads"]
    assert threads["default"]["blas_after_ms"] > 0 and threads["pinned"]["blas_after_ms"] > 0
    syn = res["datasets"]["synthetic-5000"]
    assert set(syn["methods"]) == {"none", "nudge-m", "nudge-n"}
    assert syn["serving"]["exact"]["methods"]["nudge-m"]["kept_share"] == 1.0


def test_bench_serving_threads_only_writes_its_own_json(tmp_path):
    out = tmp_path / "t.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--threads-only", "--thread-records", "2000",
                           "--thread-rounds", "3", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ratio of medians" in proc.stdout
    res = json.loads(out.read_text())
    assert set(res) == {"meta", "threads"}
    t = res["threads"]
    assert t["n_records"] == 2000 and t["rounds"] == 3
    for mode in ("default", "pinned"):
        assert t[mode]["faiss_ms"] > 0 and t[mode]["blas_after_ms"] > 0
    assert t["blas_after_ratio_default_over_pinned"] == \
        t["default"]["blas_after_ms"] / t["pinned"]["blas_after_ms"]
    assert 0 <= t["rounds_default_slower"] <= 3
