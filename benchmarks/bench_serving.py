#!/usr/bin/env python
"""Serving benchmark: does NUDGE's gain survive compression and approximate indexes?

For each dataset, one run (:func:`nudge_core.run_experiment`), then every index configuration
through :func:`nudge_core.serving.evaluate_serving`: per configuration NDCG@10 per method (NUDGE-M
also re-normalised, as a cosine index would serve it), gain kept (absolute and as % of the exact
float32 gain), build seconds, bytes per record, query time (batch, amortised per query) and
median one-query latency, all under one faiss thread.

* SciFact (``../shared/datasets/scifact`` next to the repository), paper split, seed 0, the
  default methods; also γ chosen *through* some indexes (``gamma_under_index``) vs γ chosen in
  float32, and the recall-vs-latency sweep of HNSW efSearch / IVF nprobe.
* The bundled example ``sample_data/stdlib`` with its OOD query set, the same.
* Synthetic sets (``bench_support.generate``: clustered 384-d unit records written to a memory-mapped
  ``.npy``; 10,000 training, 2,000 validation and ``--synthetic-test`` test queries), methods
  none / NUDGE-M / NUDGE-N (the adaptor's per-epoch validation searches are left out at this
  scale). Sizes above :data:`FULL_MAX` run only :data:`CHEAP_SPECS` (HNSW / IVF builds are tens
  of minutes single-threaded at 1M).
* faiss threads: the numpy BLAS search that follows a faiss HNSW batch search, timed with faiss
  left at its default OpenMP threads vs set to 1 around its call (``faiss_threads``), alternated
  (the order swapped every round). ``--threads-only`` runs just this, on synthetic unit records
  (``--thread-records`` x 384, seeded), in well under a minute, and writes
  ``results/bench_serving_threads.json``.

Printed as tables and written to JSON (``--out``); nothing here asserts on timings.

    python benchmarks/bench_serving.py                          # SciFact, stdlib, 100k, 1M
    python benchmarks/bench_serving.py --sizes 100000
    python benchmarks/bench_serving.py --quick --out /tmp/s.json  # smoke test
    python benchmarks/bench_serving.py --threads-only            # faiss threads vs BLAS only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_support import N_TRAIN, N_VAL, generate

from nudge_core import registry, run_experiment
from nudge_core.data import dataset_from_arrays
from nudge_core.retrieval import search as exact_search
from nudge_core.runspec import RunSpec, load_run
from nudge_core.serving import (HNSWIndex, IVFIndex, evaluate_serving, gamma_under_index,
                                time_queries)
from nudge_core.serving.evaluate import overlap
from nudge_core.splits import Split

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCIFACT = REPO.parent / "shared" / "datasets" / "scifact"
STDLIB = REPO / "sample_data" / "stdlib"
DEFAULT_OUT = HERE / "results" / "bench_serving.json"
THREADS_OUT = HERE / "results" / "bench_serving_threads.json"
#: ``--threads-only``: synthetic records (rows, dim) and queries searched per timed call.
THREAD_RECORDS, THREAD_DIM, THREAD_QUERIES = 20_000, 384, 128
DEFAULT_SIZES = (100_000, 1_000_000)
#: Synthetic sizes up to this run every configuration; larger ones only CHEAP_SPECS.
FULL_MAX = 200_000
CHEAP_SPECS = ("exact", "truncate:dim=128", "int8", "binary", "binary:rescore=40")
SYNTHETIC_METHODS = (registry.REFERENCE, *registry.gamma_methods())
#: Specs γ is chosen through (SciFact and stdlib), and the ANN sweeps.
GAMMA_SPECS = ("binary", "truncate:dim=64", "int8")
EF_SWEEP = (16, 32, 64, 128, 256)
NPROBE_SWEEP = (1, 4, 8, 16, 64)
THREAD_ROUNDS = 15
THREADS_ONLY_ROUNDS = 25
PAUSE_S = 0.3


def nlist_for(n: int) -> int:
    """Inverted lists: the power of two nearest sqrt(n) (SciFact 64, 100k 256, 1M 1024)."""
    return int(2 ** round(np.log2(np.sqrt(n))))


def specs_for(n: int, full: bool = True) -> list[str]:
    if not full:
        return list(CHEAP_SPECS)
    nl = nlist_for(n)
    return ["exact", "truncate:dim=128", "truncate:dim=64", "int8", "uint8", "int8:rescore=40",
            "binary", "binary:rescore=40", "binary:rescore=200", "hnsw:M=32,ef=64",
            f"ivf:nlist={nl},nprobe=8", f"ivfpq:nlist={nl},m=48,bits=8,nprobe=8"]


# ------------------------------------------------------------------ runs

def real_run(path: Path, ood: str | None = None):
    spec = RunSpec(dataset=str(path), ood=ood)
    ds, split, ood_set = load_run(spec)
    return run_experiment(ds, split, spec, ood=ood_set)


def synthetic_run(n: int, folder: Path, n_test: int, methods=SYNTHETIC_METHODS):
    info = generate(folder, n, n_train=N_TRAIN, n_val=N_VAL + n_test)
    corpus = np.load(info["corpus"], mmap_mode="r")
    z = np.load(info["queries"])
    answers = np.split(z["flat"], np.cumsum(z["lens"])[:-1])
    qids = [f"q{j}" for j in range(len(answers))]
    qrels = {q: {f"d{r}": 1 for r in a} for q, a in zip(qids, answers)}
    ds = dataset_from_arrays(corpus, z["emb"], qrels, corpus_ids=[f"d{i}" for i in range(n)],
                             query_ids=qids, name=f"synthetic-{n}")
    split = Split(qids[:N_TRAIN], qids[N_TRAIN:N_TRAIN + N_VAL], qids[N_TRAIN + N_VAL:],
                  description=f"bench_support: {N_TRAIN} train, {N_VAL} val, {n_test} test")
    return run_experiment(ds, split, RunSpec(dataset=ds.name, methods=methods)), info["seconds"]


# ------------------------------------------------------------------ parts

def ann_sweep(result, repeats: int, latency_queries: int) -> tuple[dict, HNSWIndex]:
    """Overlap with the exact top 10 and latency of HNSW (ef) and IVF (nprobe) over the reference
    method's records: one build each, search settings changed between searches."""
    ref = result.methods[registry.REFERENCE]
    records, queries = ref.estimator.index_.vectors, result.test.emb
    out = {"hnsw": [], "ivf": []}
    hnsw = HNSWIndex(records, M=32)
    for ef in EF_SWEEP:
        hnsw.ef = ef
        out["hnsw"].append({"ef": ef, "overlap@10": overlap(hnsw.search(queries, 10)[1], ref.test_top),
                            **time_queries(hnsw, queries, repeats, latency_queries)})
    nl = nlist_for(len(records))
    ivf = IVFIndex(records, nlist=nl)
    for nprobe in NPROBE_SWEEP:
        if nprobe > nl:
            continue
        ivf.nprobe = nprobe
        out["ivf"].append({"nlist": nl, "nprobe": nprobe,
                           "overlap@10": overlap(ivf.search(queries, 10)[1], ref.test_top),
                           **time_queries(ivf, queries, repeats, latency_queries)})
    out["build_seconds"] = {"hnsw": hnsw.build_seconds, "ivf": ivf.build_seconds}
    return out, hnsw


def thread_effect(hnsw: HNSWIndex, records: np.ndarray, queries: np.ndarray,
                  rounds: int = THREAD_ROUNDS) -> dict:
    """A faiss HNSW batch search immediately followed by the engine's numpy exact search (BLAS),
    with faiss at its default OpenMP threads ("default") vs 1 thread set around its call
    ("pinned"), alternated (default first in even rounds, pinned first in odd ones), each after a
    pause; medians in ms. Also the numpy search alone, the per-round ratio's median and the
    rounds in which the numpy search after faiss was slower with faiss's default threads."""
    import faiss

    kept = hnsw.threads
    times = {"default": {"faiss_ms": [], "blas_after_ms": []},
             "pinned": {"faiss_ms": [], "blas_after_ms": []}, "blas_alone_ms": []}
    for r in range(rounds):
        for mode in (("default", "pinned") if r % 2 == 0 else ("pinned", "default")):
            hnsw.threads = None if mode == "default" else 1
            time.sleep(PAUSE_S)  # any spinning OpenMP worker from before goes to sleep
            t0 = time.perf_counter()
            hnsw.search(queries, 10)
            t1 = time.perf_counter()
            exact_search(queries, records, 10)
            t2 = time.perf_counter()
            times[mode]["faiss_ms"].append((t1 - t0) * 1000)
            times[mode]["blas_after_ms"].append((t2 - t1) * 1000)
        time.sleep(PAUSE_S)
        t0 = time.perf_counter()
        exact_search(queries, records, 10)
        times["blas_alone_ms"].append((time.perf_counter() - t0) * 1000)
    hnsw.threads = kept
    out = {"rounds": rounds, "faiss_default_threads": faiss.omp_get_max_threads(),
           "blas_alone_ms": float(np.median(times["blas_alone_ms"]))}
    for mode in ("default", "pinned"):
        out[mode] = {k: float(np.median(v)) for k, v in times[mode].items()}
    out["blas_after_ratio_default_over_pinned"] = (out["default"]["blas_after_ms"]
                                                   / out["pinned"]["blas_after_ms"])
    after = {mode: np.array(times[mode]["blas_after_ms"]) for mode in ("default", "pinned")}
    out["median_round_ratio"] = float(np.median(after["default"] / after["pinned"]))
    out["rounds_default_slower"] = int((after["default"] > after["pinned"]).sum())
    return out


def threads_only(n: int, rounds: int, dim: int = THREAD_DIM, n_queries: int = THREAD_QUERIES) -> dict:
    """:func:`thread_effect` alone, on ``n`` seeded Gaussian unit records (n, dim) float32 and
    ``n_queries`` noisy copies of some of them, through an HNSW index (M=16, ef=64; built with
    faiss's default threads: the build is not timed against anything)."""
    rng = np.random.default_rng(0)
    records = rng.standard_normal((n, dim), dtype=np.float32)
    records /= np.linalg.norm(records, axis=1, keepdims=True)
    queries = records[rng.choice(n, n_queries, replace=False)] + \
        0.5 * rng.standard_normal((n_queries, dim), dtype=np.float32) / np.sqrt(dim)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    hnsw = HNSWIndex(records, M=16, ef=64, threads=None)
    return {"n_records": n, "dim": dim, "n_queries": n_queries,
            "build_seconds": hnsw.build_seconds, **thread_effect(hnsw, records, queries, rounds)}


def print_threads(t: dict) -> None:
    print(f"  faiss threads ({t['faiss_default_threads']} by default), {t['rounds']} alternating "
          f"rounds: numpy search right after a faiss search {t['default']['blas_after_ms']:.2f} ms "
          f"(default) vs {t['pinned']['blas_after_ms']:.2f} ms (1 thread set around faiss), ratio "
          f"of medians {t['blas_after_ratio_default_over_pinned']:.2f} (median per-round ratio "
          f"{t['median_round_ratio']:.2f}; default slower in {t['rounds_default_slower']} of "
          f"{t['rounds']} rounds); numpy alone {t['blas_alone_ms']:.2f} ms; faiss itself "
          f"{t['default']['faiss_ms']:.2f} vs {t['pinned']['faiss_ms']:.2f} ms")


def gamma_part(result) -> list[dict]:
    rows = []
    for method in registry.gamma_methods():
        if method not in result.methods:
            continue
        for spec in GAMMA_SPECS:
            g = gamma_under_index(result, method, spec)
            rows.append({k: g[k] for k in ("spec", "method", "gamma_float", "gamma_index", "gain")}
                        | {"ndcg@10_gamma_float": g["test"]["gamma_float"]["ndcg@10"],
                           "ndcg@10_gamma_index": g["test"]["gamma_index"]["ndcg@10"],
                           "n_gammas": len(g["gammas"])})
    return rows


def bench_dataset(name: str, result, specs: list[str], args, extras: bool) -> dict:
    t0 = time.perf_counter()
    ds = result.dataset
    print(f"\n{name}: {ds.n_records:,} records x {ds.dim}, {len(result.test)} test queries"
          f"{f', {len(result.ood)} OOD' if result.ood is not None else ''}; {len(specs)} configs",
          flush=True)
    serving = evaluate_serving(result, specs, repeats=args.repeats,
                               latency_queries=args.latency_queries,
                               progress=lambda f, m: print(f"  [{f:4.0%}] {m}", flush=True))
    out = {"n_records": ds.n_records, "dim": ds.dim, "n_test": len(result.test),
           "n_ood": None if result.ood is None else len(result.ood),
           "methods": {n: {"gamma": r.gamma, "fit_seconds": r.fit_seconds, "ndcg@10": r.metrics["ndcg@10"]}
                       for n, r in result.methods.items()},
           "serving": serving}
    if extras:
        print("  ANN sweep ...", flush=True)
        out["ann_sweep"], hnsw = ann_sweep(result, args.repeats, args.latency_queries)
        print("  faiss threads ...", flush=True)
        ref = result.methods[registry.REFERENCE].estimator.index_.vectors
        out["threads"] = thread_effect(hnsw, ref, result.test.emb, args.thread_rounds)
        if not args.no_gamma:
            print("  γ through the index ...", flush=True)
            out["gamma_under_index"] = gamma_part(result)
    out["seconds"] = time.perf_counter() - t0
    print_dataset(name, out)
    return out


# ------------------------------------------------------------------ printing

def _cell(m: dict) -> str:
    share = m.get("kept_share")
    pct = "    -" if share is None else f"{100 * share:4.0f}%"
    return f"{m['metrics']['ndcg@10']:.3f} {m['gain_kept']:+.3f} {pct}"


def print_dataset(name: str, out: dict) -> None:
    methods = list(out["methods"])
    cols = []
    for m in methods:
        cols.append((m, registry.label(m)))
        if any("renormalized" in e["methods"][m] for e in out["serving"].values()):
            cols.append((m + "/cos", registry.label(m) + " renorm"))
    print(f"\n{name}  (cells: NDCG@10, gain kept vs no fine-tuning, % of the exact gain; "
          "ms = batch per query / one-query latency)")
    head = f"{'config':38} {'B/rec':>7} {'build s':>8} {'q ms':>7} {'lat ms':>7} "
    print(head + " ".join(f"{label:>20}" for _, label in cols))
    for text, e in out["serving"].items():
        cells = []
        for key, _ in cols:
            m = e["methods"][key.split("/")[0]]
            m = m["renormalized"] if key.endswith("/cos") else m
            cells.append(f"{_cell(m):>20}")
        flag = " *" if any(m.get("rankings_differ") for m in e["methods"].values()) else ""
        print(f"{text[:38]:38} {e['bytes_per_record']:7.0f} {e['build_seconds']:8.2f} "
              f"{e.get('query_ms', float('nan')):7.3f} {e.get('latency_ms', float('nan')):7.2f} "
              + " ".join(cells) + flag)
    print("  * NUDGE-M ranks differently re-normalised (share of test queries whose top 10 change: "
          + ", ".join(f"{t}: {e['methods'][k]['changed_queries']:.2f}" for t, e in out["serving"].items()
                      for k in e["methods"] if "changed_queries" in e["methods"][k]) + ")")
    if "ann_sweep" in out:
        sw = out["ann_sweep"]
        print("  ANN sweep (reference records): "
              + "; ".join(f"hnsw ef={r['ef']}: overlap {r['overlap@10']:.3f} lat {r['latency_ms']:.2f} ms"
                          for r in sw["hnsw"])
              + " | " + "; ".join(f"ivf nprobe={r['nprobe']}: {r['overlap@10']:.3f} "
                                  f"{r['latency_ms']:.2f} ms" for r in sw["ivf"]))
    if "threads" in out:
        print_threads(out["threads"])
    for g in out.get("gamma_under_index", []):
        print(f"  γ through {g['spec']:16} {g['method']}: float γ {g['gamma_float']:.4g} → "
              f"NDCG@10 {g['ndcg@10_gamma_float']:.4f}; index γ {g['gamma_index']:.4g} → "
              f"{g['ndcg@10_gamma_index']:.4f} ({g['gain']:+.4f})")


def _versions() -> dict:
    import faiss
    import scipy

    return {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "faiss": faiss.__version__, "platform": platform.platform(), "cpus": os.cpu_count()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help=f"JSON output (default {DEFAULT_OUT}; --threads-only: {THREADS_OUT})")
    ap.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES),
                    help="comma-separated synthetic corpus sizes ('' for none)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: stdlib with three configs and a 5,000-record synthetic set")
    ap.add_argument("--no-scifact", action="store_true", help="skip SciFact")
    ap.add_argument("--no-gamma", action="store_true", help="skip γ through the index")
    ap.add_argument("--repeats", type=int, default=3, help="timed batch searches per configuration")
    ap.add_argument("--latency-queries", type=int, default=20, help="one-query searches timed")
    ap.add_argument("--synthetic-test", type=int, default=500, help="synthetic test queries")
    ap.add_argument("--thread-rounds", type=int, default=None,
                    help=f"alternating rounds of the faiss-threads timing (default {THREAD_ROUNDS}; "
                         f"--threads-only: {THREADS_ONLY_ROUNDS})")
    ap.add_argument("--threads-only", action="store_true",
                    help="only the faiss-threads timing, on synthetic records (quick)")
    ap.add_argument("--thread-records", type=int, default=THREAD_RECORDS,
                    help=f"--threads-only: synthetic records (default {THREAD_RECORDS})")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    args.out = args.out or (THREADS_OUT if args.threads_only else DEFAULT_OUT)
    if args.thread_rounds is None:
        args.thread_rounds = THREADS_ONLY_ROUNDS if args.threads_only else THREAD_ROUNDS
    result: dict = {"meta": {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv[1:],
                             "loadavg_at_start": os.getloadavg(), **_versions(),
                             "faiss_threads_in_indexes": 1}, "datasets": {}}
    def save() -> None:  # after every dataset, so a stopped run keeps what it measured
        result["meta"]["wall_seconds"] = time.perf_counter() - t0
        result["meta"]["loadavg_at_end"] = os.getloadavg()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, default=float))

    if args.threads_only:
        print(f"faiss threads vs the numpy search after it: {args.thread_records:,} synthetic "
              f"records x {THREAD_DIM}, {args.thread_rounds} rounds", flush=True)
        del result["datasets"]
        result["threads"] = threads_only(args.thread_records, args.thread_rounds)
        print_threads(result["threads"])
        save()
        print(f"\nwrote {args.out}  (wall {result['meta']['wall_seconds']:.1f} s)")
        return 0

    if args.quick:
        args.repeats, args.latency_queries, args.thread_rounds, args.no_gamma = 1, 3, 2, True
        sizes = [5000]
    else:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    if not args.quick and not args.no_scifact:
        res = real_run(SCIFACT)
        result["datasets"]["scifact"] = bench_dataset("scifact", res, specs_for(res.dataset.n_records),
                                                      args, extras=True)
        save()
    res = real_run(STDLIB, ood=str(STDLIB / "ood"))
    specs = ["exact", "int8", "hnsw:M=16,ef=32"] if args.quick else specs_for(res.dataset.n_records)
    result["datasets"]["stdlib"] = bench_dataset("stdlib", res, specs, args, extras=True)
    save()
    del res
    tmp = Path(tempfile.mkdtemp(prefix="nudge-serving-"))
    try:
        for n in sizes:
            print(f"\nsynthetic {n:,}: generating under {tmp} and fitting ...", flush=True)
            res, gen_s = synthetic_run(n, tmp / str(n), args.synthetic_test)
            full = n <= FULL_MAX
            specs = ["exact", "binary:rescore=40", f"ivf:nlist={nlist_for(n)},nprobe=4"] \
                if args.quick else specs_for(n, full)
            out = bench_dataset(f"synthetic-{n}", res, specs, args, extras=False)
            out["generate_seconds"] = gen_s
            out["configs_skipped"] = [] if full or args.quick else \
                [s for s in specs_for(n) if s not in CHEAP_SPECS]
            result["datasets"][f"synthetic-{n}"] = out
            save()
            del res
            shutil.rmtree(tmp / str(n), ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    save()
    print(f"\nwrote {args.out}  (wall {result['meta']['wall_seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
