"""Helpers of ``bench_engine.py``: memory probes, the synthetic scale-series data, and one fit of
ours or of the reference (``nudge-ft``), timed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

DIM = 384
N_TRAIN = 10_000
N_VAL = 2_000

GEN_BLOCK = 65_536
MIB = 2.0 ** 20

# Synthetic data: records in clusters (so near neighbours compete). Each "hot" record r (one that
# answers queries) has a partner p in its cluster, and its queries sit part of the way from r toward
# p (a fraction drawn in DRIFT), plus noise: the untuned model often ranks p first. Training queries
# reveal the shift, so moving r toward its queries (NUDGE) fixes validation queries too.
N_CENTRES = 1024
SPREAD = 0.05        # per-dimension noise around a centre (cos within a cluster ~ 0.5)
N_HOT = 5_000        # records that answer queries (at most n_records // 2)
DRIFT = (0.3, 0.7)   # how far toward the partner a record's queries sit (uniform range)
QUERY_NOISE = 0.5    # ||noise|| of a query before normalising


# ------------------------------------------------------------------ memory helpers

def status_kib(*fields: str) -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in fields:
                out[key] = int(rest.split()[0])
    return out


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class Poller:
    """Samples RssAnon / RssFile every few ms to split the peak into heap and mapped-file pages."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = status_kib("RssAnon", "RssFile")
            for key, val in now.items():
                self.peak[key] = max(self.peak[key], val)
            self._stop.wait(self.interval)

    def __enter__(self) -> "Poller":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------------ synthetic data

def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def generate(folder: Path, n_records: int, dim: int = DIM, n_train: int = N_TRAIN,
             n_val: int = N_VAL, seed: int = 0) -> dict:
    """Write ``corpus.npy`` (n, dim) float32 unit norm block by block, and ``queries.npz``."""
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, n_records])
    centres = _unit(rng.standard_normal((N_CENTRES, dim), dtype=np.float32))
    corpus_path = folder / "corpus.npy"
    mm = np.lib.format.open_memmap(corpus_path, mode="w+", dtype=np.float32, shape=(n_records, dim))
    labels = np.empty(n_records, dtype=np.int32)
    for start in range(0, n_records, GEN_BLOCK):
        m = min(GEN_BLOCK, n_records - start)
        labels[start:start + m] = rng.integers(0, N_CENTRES, m)
        block = centres[labels[start:start + m]]
        block += np.float32(SPREAD) * rng.standard_normal((m, dim), dtype=np.float32)
        mm[start:start + m] = _unit(block)
    mm.flush()
    del mm
    corpus = np.load(corpus_path, mmap_mode="r")
    n_hot = min(N_HOT, n_records // 2)
    hot = np.sort(rng.choice(n_records, size=n_hot, replace=False))
    by_label = np.argsort(labels, kind="stable")
    first = np.searchsorted(labels[by_label], np.arange(N_CENTRES + 1))
    lab = labels[hot]
    partner = by_label[first[lab] + (rng.random(n_hot) * (first[lab + 1] - first[lab])).astype(np.int64)]
    v_hot, v_partner = np.asarray(corpus[hot]), np.asarray(corpus[partner])
    drift = rng.uniform(*DRIFT, size=(n_hot, 1)).astype(np.float32)
    targets = _unit(v_hot + drift * (v_partner - v_hot))
    n_q = n_train + n_val
    n_ans = rng.choice([1, 2, 3], size=n_q, p=[0.6, 0.3, 0.1])
    answers = [rng.choice(n_hot, size=k, replace=False) for k in n_ans]
    mix = np.stack([targets[a].mean(axis=0) for a in answers])
    noise = rng.standard_normal((n_q, dim), dtype=np.float32) * np.float32(QUERY_NOISE / np.sqrt(dim))
    queries = _unit(mix + noise)
    flat = np.concatenate([hot[a] for a in answers]).astype(np.int64)
    np.savez(folder / "queries.npz", emb=queries, flat=flat, lens=n_ans.astype(np.int64),
             n_train=n_train)
    return {"corpus": str(corpus_path), "queries": str(folder / "queries.npz"),
            "seconds": time.perf_counter() - t0}


def load_queries(path: str):
    """(train, val) QuerySets from ``generate``'s ``queries.npz``."""
    from nudge_core.data import QuerySet

    z = np.load(path)
    emb, flat, lens, n_train = z["emb"], z["flat"], z["lens"], int(z["n_train"])
    answers = np.split(flat, np.cumsum(lens)[:-1])

    def qs(lo: int, hi: int) -> QuerySet:
        return QuerySet([f"q{j}" for j in range(lo, hi)], np.ascontiguousarray(emb[lo:hi]),
                        answers[lo:hi], [np.ones(len(a)) for a in answers[lo:hi]])

    return qs(0, n_train), qs(n_train, len(lens))


# ------------------------------------------------------------------ reference helpers

def run_reference(method: str, X: np.ndarray, tr, va) -> tuple[np.ndarray, float, float]:
    """nudge-ft's fit of ``method`` (:func:`nudge_core.reference.run_reference`)."""
    from nudge_core import registry
    from nudge_core.reference import run_reference as reference

    return reference(registry.get(method).estimator.unit_norm, X, tr, va)


def run_ours(method: str, X: np.ndarray, tr, va):
    from nudge_core import registry

    est = registry.get(method).build()
    t0 = time.perf_counter()
    est.fit(X, tr, va)
    return est, time.perf_counter() - t0
