#!/usr/bin/env python
"""Engine benchmark: NUDGE-M / NUDGE-N fit time and memory, ours vs the authors' ``nudge-ft``.

Part 1, SciFact (``../shared/datasets/scifact`` next to the repository): fit time of
``NudgeM``/``NudgeN`` and of the reference ``NUDGEM``/``NUDGEN`` on the paper split (seed 0), in this
process: untimed warm-up fits, then ``--repeats`` timed fits of each under two protocols (turns of
``BLOCK`` consecutive fits of one implementation, and strict alternation; see ``PROTOCOLS``), best
and median of each; the chosen γ of both and the largest absolute difference of the outputs.

Part 2, synthetic scale series: n_records x 384 float32 unit-norm records written block by block to a
temporary ``.npy`` and opened with ``np.load(mmap_mode="r")`` (as real input is), 10,000 training
and 2,000 validation queries with 1-3 relevant records each. Every (size, method, implementation)
is fitted once in a fresh subprocess that reports the fit's wall time and its peak RSS (VmHWM,
reset with ``/proc/self/clear_refs`` just before the fit, so the peak is the fit's own), next to the
RSS just before the fit (baseline: interpreter, libraries, queries) and the corpus matrix size.

Timings are printed and written to JSON (``--out``); nothing here asserts on them.

    python benchmarks/bench_engine.py                      # everything (10k, 100k, 1M)
    python benchmarks/bench_engine.py --sizes 10000,100000
    python benchmarks/bench_engine.py --quick --no-reference --out /tmp/b.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_support import (DIM, DRIFT, MIB, N_CENTRES, N_HOT, N_TRAIN, N_VAL, QUERY_NOISE, SPREAD,
                           Poller, generate, load_queries, reset_peak, run_ours, run_reference,
                           status_kib)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCIFACT = REPO.parent / "shared" / "datasets" / "scifact"
DEFAULT_OUT = HERE / "results" / "bench_engine.json"

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
#: The reference is skipped above this many records: NUDGEN allocates a dense (n_val, n) float32
#: answer matrix and (n_val, n) score matrices (2,000 x 1M x 4 B = 7.5 GiB each), and builds the
#: pulls with a Python loop over every record.
REFERENCE_MAX_RECORDS = 100_000
REFERENCE_TIMEOUT_S = 1800
#: Untimed SciFact fits of each implementation before the timed rounds.
WARMUP = 3


# ------------------------------------------------------------------ part 1: SciFact

#: Protocols for the SciFact timings, as consecutive fits of one implementation per turn:
#: "blocks" (each implementation's steady state: BLOCK fits of ours, then BLOCK of the reference,
#: and so on) and "alternating" (every fit right after one of the other implementation). Whatever
#: ran just before a fit leaves cold caches and busy worker threads behind; that costs a roughly
#: fixed few ms, a large share of our 8-15 ms NUDGE-M fit and a small one of the reference's
#: 110-200 ms, so the alternating ratio is lower. Both are measured and reported.
BLOCK = 5
PROTOCOLS = {"blocks": BLOCK, "alternating": 1}


def _timed_rounds(method: str, X, tr, va, repeats: int, block: int, with_reference: bool) -> dict:
    """``repeats`` timed fits of each implementation, in turns of ``block`` consecutive fits."""
    ours, ref, est, ref_emb, ref_gamma = [], [], None, None, None
    while len(ours) < repeats:
        for _ in range(min(block, repeats - len(ours))):
            est, sec = run_ours(method, X, tr, va)
            ours.append(sec)
        if with_reference:
            for _ in range(min(block, repeats - len(ref))):
                ref_emb, ref_gamma, sec = run_reference(method, X, tr, va)
                ref.append(sec)
    row = {"block": block, "ours_seconds": min(ours), "ours_median_seconds": float(np.median(ours)),
           "ours_all_seconds": ours, "est": est}
    if with_reference:
        row.update({"reference_seconds": min(ref), "reference_median_seconds": float(np.median(ref)),
                    "reference_all_seconds": ref, "ref_emb": ref_emb, "ref_gamma": ref_gamma,
                    "speedup_reference_over_ours": min(ref) / min(ours),
                    "speedup_of_medians": float(np.median(ref) / np.median(ours))})
    return row


def bench_scifact(repeats: int, with_reference: bool) -> dict:
    if not SCIFACT.is_dir():
        raise SystemExit(f"bench_engine: SciFact not found at {SCIFACT}; the benchmark needs the "
                         "shared datasets folder next to the repository (../shared/datasets/scifact)")
    from nudge_core import registry
    from nudge_core.data import load_dataset
    from nudge_core.splits import paper_split

    ds = load_dataset(SCIFACT, load_texts=False)
    split = paper_split(ds.labelled_ids, seed=0)
    tr, va = ds.queries(split.train), ds.queries(split.val)
    X = np.asarray(ds.corpus_emb, dtype=np.float32)
    out = {"path": str(SCIFACT), "model": ds.model, "n_records": int(X.shape[0]),
           "dim": int(X.shape[1]), "n_train": len(tr), "n_val": len(va), "repeats": repeats,
           "reference": with_reference, "warmup": WARMUP, "methods": {}}
    for method in registry.gamma_methods():
        for _ in range(WARMUP):  # untimed: imports, allocator, thread pools
            run_ours(method, X, tr, va)
            if with_reference:
                run_reference(method, X, tr, va)
        rows = {name: _timed_rounds(method, X, tr, va, repeats, block, with_reference)
                for name, block in PROTOCOLS.items()}
        est = rows["blocks"].pop("est")
        row = {"gamma_ours": est.gamma_, "val_objective_ours": est.objective_}
        if with_reference:
            ref_emb, row["gamma_reference"] = rows["blocks"].pop("ref_emb"), rows["blocks"].pop("ref_gamma")
            row["max_abs_diff_embeddings"] = float(np.abs(est.embeddings_ - ref_emb).max())
        for name, r in rows.items():
            for key in ("est", "ref_emb", "ref_gamma"):
                r.pop(key, None)
        row["protocols"] = rows
        # headline figures: the blocks protocol
        row.update({k: v for k, v in rows["blocks"].items() if k != "block"})
        out["methods"][method] = row
    return out


# ------------------------------------------------------------------ part 2: one fit, in a child

def child(spec: dict) -> dict:
    """One fit in this (fresh) process; returns timings and memory in MiB."""
    impl, method = spec["impl"], spec["method"]
    if impl == "reference":
        import nudge  # noqa: F401  (import torch before the baseline)
    from nudge_core.nudge import NudgeM  # noqa: F401  (imports faiss/scipy before the baseline)

    X = np.load(spec["corpus"], mmap_mode="r")
    tr, va = load_queries(spec["queries"])
    base = status_kib("VmRSS", "RssAnon", "RssFile")
    reset = reset_peak()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    load0 = os.getloadavg()[0]
    with Poller() as poll:
        if impl == "ours":
            est, seconds = run_ours(method, X, tr, va)
            gamma, obj = est.gamma_, est.objective_
            obj0 = float(est.curve_objective_[0])  # both curves start at γ = 0
        else:
            _, gamma, seconds = run_reference(method, X, tr, va)
            obj = obj0 = None
    hwm = status_kib("VmHWM")["VmHWM"]
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {"fit_seconds": seconds, "fit_cpu_seconds": cpu,
            "loadavg_1min": [load0, os.getloadavg()[0]], "gamma": gamma, "val_objective": obj, "val_objective_gamma0": obj0,
            "baseline_rss_mib": base["VmRSS"] / 1024, "baseline_anon_mib": base["RssAnon"] / 1024,
            "peak_rss_mib": hwm / 1024, "peak_reset": reset,
            "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_anon_mib_sampled": poll.peak["RssAnon"] / 1024,
            "peak_file_mib_sampled": poll.peak["RssFile"] / 1024}


def run_child(spec: dict, timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(spec)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get(
        "PYTHONPATH", "")])))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"status": f"failed (exit {proc.returncode}): {' | '.join(tail)}"}
    res = json.loads(lines[-1][len("RESULT "):])
    res.update(status="ok", process_wall_seconds=wall)
    return res


def bench_scale(sizes: list[int], with_reference: bool, tmp: Path) -> dict:
    from nudge_core import registry

    runs, generation = [], {}
    for n in sizes:
        folder = tmp / f"n{n}"
        gen = generate(folder, n)
        generation[str(n)] = gen["seconds"]
        corpus_mib = n * DIM * 4 / MIB
        impls = ["ours"] + (["reference"] if with_reference else [])
        for method in registry.gamma_methods():
            for impl in impls:
                row = {"n_records": n, "method": method, "impl": impl, "corpus_mib": corpus_mib}
                if impl == "reference" and n > REFERENCE_MAX_RECORDS:
                    row["status"] = (f"skipped: reference not run above {REFERENCE_MAX_RECORDS:,} "
                                     "records (dense n_val x n matrices, Python loop per record)")
                else:
                    spec = {"impl": impl, "method": method, **gen}
                    row.update(run_child(spec, REFERENCE_TIMEOUT_S if impl == "reference" else 1800))
                    if row["status"] == "ok":
                        row["peak_over_corpus"] = row["peak_rss_mib"] / corpus_mib
                        row["fit_share_over_corpus"] = (row["peak_rss_mib"] -
                                                        row["baseline_rss_mib"]) / corpus_mib
                runs.append(row)
                _print_run(row)
        shutil.rmtree(folder, ignore_errors=True)
    for row in runs:  # reference / ours at the same size and method
        if row["impl"] == "reference" and row.get("status") == "ok":
            ours = next(r for r in runs if r["impl"] == "ours" and r["n_records"] == row["n_records"]
                        and r["method"] == row["method"])
            if ours.get("status") == "ok":
                row["speedup_reference_over_ours"] = row["fit_seconds"] / ours["fit_seconds"]
    return {"dim": DIM, "n_train": N_TRAIN, "n_val": N_VAL, "sizes": sizes,
            "generator": {"n_centres": N_CENTRES, "spread": SPREAD, "n_hot": N_HOT, "drift": DRIFT,
                          "description": "clustered unit-norm records; each hot record's queries "
                                         "sit toward a same-cluster partner, plus noise",
                          "query_noise": QUERY_NOISE, "answers_per_query": "1-3 (p .6/.3/.1)"},
            "generation_seconds": generation, "runs": runs}


# ------------------------------------------------------------------ report

def _print_run(row: dict) -> None:
    if row.get("status") != "ok":
        print(f"  {row['n_records']:>9,} {row['method']:8} {row['impl']:9}  {row.get('status')}",
              flush=True)
        return
    print(f"  {row['n_records']:>9,} {row['method']:8} {row['impl']:9}  fit {row['fit_seconds']:8.2f} s"
          f" (cpu {row['fit_cpu_seconds']:8.2f} s)  peak {row['peak_rss_mib']:8.0f} MiB"
          f"  load {row['loadavg_1min'][0]:.1f}", flush=True)


def targets(result: dict) -> dict:
    out = {}
    sci = result.get("scifact", {}).get("methods", {})
    # Judged on the ratio of medians under the blocks protocol (each implementation at its steady
    # state); the alternating protocol is reported next to it. On this shared 2-core machine a single
    # lucky or unlucky fit moves a best-of-15 ratio by +-30% from run to run, the medians far less.
    speed = {f"{m} {name}": {"medians": p["speedup_of_medians"], "best": p["speedup_reference_over_ours"]}
             for m, r in sci.items() for name, p in r.get("protocols", {}).items()
             if "speedup_of_medians" in p}
    blocks = [v["medians"] for k, v in speed.items() if k.endswith(" blocks")]
    alternating = [v["medians"] for k, v in speed.items() if k.endswith(" alternating")]
    out["scifact_10x_faster"] = {"target": ">= 10x (ratio of medians, blocks)", "speedup": speed,
                                 "met": min(blocks) >= 10 if blocks else None,
                                 "met_alternating": min(alternating) >= 10 if alternating else None}
    big = [r for r in result.get("scale", {}).get("runs", [])
           if r["n_records"] == 1_000_000 and r["impl"] == "ours" and r.get("status") == "ok"]
    out["1m_fit_within_60s"] = {"target": "<= 60 s",
                                "seconds": {r["method"]: r["fit_seconds"] for r in big},
                                "met": all(r["fit_seconds"] <= 60 for r in big) if big else None}
    out["1m_peak_within_2.5x_corpus"] = {
        "target": "peak RSS <= 2.5 x corpus matrix",
        "peak_over_corpus": {r["method"]: r["peak_over_corpus"] for r in big},
        "met": all(r["peak_over_corpus"] <= 2.5 for r in big) if big else None}
    return out


def print_table(result: dict) -> None:
    sci = result.get("scifact")
    if sci:
        print(f"\nSciFact ({sci['n_records']:,} records x {sci['dim']}, {sci['n_train']} train / "
              f"{sci['n_val']} val queries, paper split seed 0), {sci.get('warmup', 0)} warm-up "
              f"fits, then {sci['repeats']} timed fits of each per protocol (best, median):")
        print(f"  {'method':8} {'protocol':12} {'ours s':>9} {'ours med':>9} {'ref s':>9} "
              f"{'ref med':>9} {'ref/ours':>9} {'(medians)':>9}")
        for m, r in sci["methods"].items():
            for name, p in r.get("protocols", {}).items():  # absent in results from before 2026-11
                has_ref = p.get("reference_seconds") is not None

                def fmt(key, spec, width=9, p=p, has_ref=has_ref):
                    return format(p[key], spec) if has_ref else "-".rjust(width)
                print(f"  {m:8} {name:12} {p['ours_seconds']:9.4f} {p['ours_median_seconds']:9.4f} "
                      f"{fmt('reference_seconds', '9.4f')} {fmt('reference_median_seconds', '9.4f')} "
                      f"{fmt('speedup_reference_over_ours', '8.1f', 8)}x "
                      f"{fmt('speedup_of_medians', '8.1f', 8)}x")
        print(f"  {'method':8} {'γ ours':>10} {'γ ref':>10} {'max|Δemb|':>10}")
        for m, r in sci["methods"].items():
            has_ref = r.get("gamma_reference") is not None
            ref = (f"{r['gamma_reference']:10.6f} {r['max_abs_diff_embeddings']:10.2e}" if has_ref
                   else f"{'-':>10} {'-':>10}")
            print(f"  {m:8} {r['gamma_ours']:10.6f} {ref}")
    scale = result.get("scale")
    if scale:
        print(f"\nSynthetic scale series ({scale['dim']}-d float32 unit norm, memory-mapped; "
              f"{scale['n_train']:,} train / {scale['n_val']:,} val queries; one fresh process per row):")
        print(f"  {'records':>9} {'method':8} {'impl':9} {'fit s':>8} {'cpu s':>8} {'ref/ours':>8} "
              f"{'corpus':>8} {'base':>7} {'peak':>8} {'peak/corp':>9} {'(peak-base)/corp':>16} "
              f"{'anon pk':>8} {'γ':>9} {'val@γ0':>7} {'val@γ':>7}")
        for r in scale["runs"]:
            head = f"  {r['n_records']:>9,} {r['method']:8} {r['impl']:9}"
            if r.get("status") != "ok":
                print(f"{head} {r.get('status')}")
                continue
            sp = r.get("speedup_reference_over_ours")
            vo = r.get("val_objective")
            v0 = r.get("val_objective_gamma0")
            print(f"{head} {r['fit_seconds']:8.2f} {r['fit_cpu_seconds']:8.2f} "
                  f"{(f'{sp:7.1f}x' if sp else '       -')} "
                  f"{r['corpus_mib']:7.0f}M {r['baseline_rss_mib']:6.0f}M {r['peak_rss_mib']:7.0f}M "
                  f"{r['peak_over_corpus']:9.2f} {r['fit_share_over_corpus']:16.2f} "
                  f"{r['peak_anon_mib_sampled']:7.0f}M {r['gamma']:9.5f} "
                  f"{(f'{v0:7.3f}' if v0 is not None else '      -')} "
                  f"{(f'{vo:7.3f}' if vo is not None else '      -')}")
        print("  (corpus/base/peak in MiB; base = RSS just before the fit; peak = VmHWM during the "
              "fit, reset before it; anon pk = sampled peak of heap pages, i.e. without the "
              "memory-mapped corpus pages)")
    print("\nTargets:")
    for name, t in result["targets"].items():
        vals = {k: v for k, v in t.items() if k not in ("target", "met")}
        state = {True: "MET", False: "MISSED", None: "not measured"}[t["met"]]
        print(f"  {name:28} {t['target']:42} {state:13} {json.dumps(vals, default=_round)}")


def _round(x):
    return round(float(x), 3)


def _versions(with_reference: bool) -> dict:
    import faiss
    import scipy

    out = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
           "faiss": faiss.__version__, "platform": platform.platform(), "cpus": os.cpu_count(),
           "machine": platform.machine()}
    if with_reference:
        import importlib.metadata as md

        import torch
        out.update(torch=torch.__version__, nudge_ft=md.version("nudge-ft"),
                   torch_threads=torch.get_num_threads())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    ap.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES),
                    help="comma-separated corpus sizes for the scale series")
    ap.add_argument("--quick", action="store_true", help="10k records only (smoke test)")
    ap.add_argument("--no-reference", action="store_true", help="skip nudge-ft (not installed)")
    ap.add_argument("--repeats", type=int, default=3, help="SciFact: timed fits of each implementation per protocol")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.one:
        print("RESULT " + json.dumps(child(json.loads(args.one))), flush=True)
        return 0

    sizes = [10_000] if args.quick else [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    with_ref = not args.no_reference
    if with_ref:
        try:
            import nudge  # noqa: F401
        except ImportError:
            raise SystemExit("bench_engine: the reference package is not installed (pip install "
                             "torch==2.13.0 nudge-ft==0.1.2), or pass --no-reference") from None
    t0 = time.perf_counter()
    result: dict = {"meta": {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv[1:],
                             "loadavg_at_start": os.getloadavg(),
                             "quick": args.quick, "reference": with_ref, **_versions(with_ref)}}
    print("SciFact ...", flush=True)
    result["scifact"] = bench_scifact(args.repeats, with_ref)
    tmp = Path(tempfile.mkdtemp(prefix="nudge-bench-"))
    try:
        print(f"Scale series {sizes} (data under {tmp}) ...", flush=True)
        result["scale"] = bench_scale(sizes, with_ref, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["targets"] = targets(result)
    result["meta"]["wall_seconds"] = time.perf_counter() - t0
    result["meta"]["loadavg_at_end"] = os.getloadavg()
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float))
    print(f"\nwrote {args.out}  (wall {result['meta']['wall_seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
