#!/usr/bin/env python
"""Exact γ path vs grid: NUDGE-N fit time and what each finds, in one process.

SciFact (``../shared/datasets/scifact``, paper split seed 0) and the bundled example: for the
objectives recall@1 (the reference's) and ndcg@10, a NUDGE-N fit on the reference grid
(0 … 0.48, 25 points) and an exact fit over [0, 4]; warm-up fits first, then ``--repeats`` fits
of each, alternating, median seconds; the best validation value, chosen γ and test NDCG@10.
Synthetic series (``--sizes``, default 100,000): the memory-mapped corpus of
``bench_support.generate`` (10,000 train / 2,000 validation queries), one grid and one exact fit
each. Ratios are exact / grid medians measured in the same run. Prints a table and writes JSON;
nothing is asserted.

    python benchmarks/bench_exact.py --repeats 7 --sizes 100000,1000000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_support import generate, load_queries

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATASETS = {"scifact": REPO.parent / "shared" / "datasets" / "scifact",
            "stdlib": REPO / "sample_data" / "stdlib"}
OBJECTIVES = ("recall@1", "ndcg@10")


def _fits(records, tr, va, objective: str, repeats: int) -> dict:
    from nudge_core.nudge import NudgeN

    kinds = {"grid": {"objective": objective}, "exact": {"objective": objective, "exact": True}}
    for kw in kinds.values():
        NudgeN(**kw).fit(records, tr, va)  # warm-up
    times = {k: [] for k in kinds}
    ests = {}
    for _ in range(repeats):
        for kind, kw in kinds.items():
            t0 = time.perf_counter()
            ests[kind] = NudgeN(**kw).fit(records, tr, va)
            times[kind].append(time.perf_counter() - t0)
    return {kind: {"median_s": float(np.median(t)), "best_s": float(min(t)),
                   "gamma": ests[kind].gamma_, "validation": ests[kind].objective_,
                   "curve_points": int(len(ests[kind].curve_gammas_)), "estimator": ests[kind]}
            for kind, t in times.items()}


def bench_datasets(repeats: int) -> list[dict]:
    from nudge_core.data import load_dataset
    from nudge_core.metrics import evaluate, mean_metrics
    from nudge_core.splits import paper_split

    rows = []
    for name, path in DATASETS.items():
        if not path.is_dir():
            print(f"skip {name}: {path} not found")
            continue
        ds = load_dataset(path)
        sp = paper_split(ds.labelled_ids, 0)
        tr, va, te = (ds.queries(x) for x in (sp.train, sp.val, sp.test))
        records = np.asarray(ds.corpus_emb, np.float32)
        for objective in OBJECTIVES:
            res = _fits(records, tr, va, objective, repeats)
            for kind, r in res.items():
                est = r.pop("estimator")
                r["test_ndcg@10"] = mean_metrics(evaluate(est.search(te.emb, 40), te))["ndcg@10"]
                rows.append({"data": name, "objective": objective, "search": kind, **r})
    return rows


def bench_sizes(sizes: list[int], tmp: Path) -> list[dict]:
    rows = []
    for n in sizes:
        gen = generate(tmp / str(n), n)
        records = np.load(gen["corpus"], mmap_mode="r")
        tr, va = load_queries(gen["queries"])
        res = _fits(records, tr, va, "recall@1", 1)
        for kind, r in res.items():
            r.pop("estimator")
            rows.append({"data": f"synthetic {n:,}", "objective": "recall@1", "search": kind, **r})
        del records
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--sizes", default="100000", help="synthetic sizes, comma list ('' for none)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_exact.json")
    args = ap.parse_args()
    rows = bench_datasets(args.repeats)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="nudge-bench-exact-") as tmp:
        rows += bench_sizes(sizes, Path(tmp))
    print(f"{'data':18}{'objective':11}{'search':7}{'median s':>10}{'γ':>9}{'val best':>10}"
          f"{'test ndcg@10':>14}{'points':>8}{'exact/grid':>12}")
    grid_time = {}
    for r in rows:
        key = (r["data"], r["objective"])
        if r["search"] == "grid":
            grid_time[key] = r["median_s"]
        r["exact_over_grid"] = r["median_s"] / grid_time[key] if r["search"] == "exact" else None
        ratio = f"{r['exact_over_grid']:.2f}x" if r["exact_over_grid"] else ""
        test = f"{r['test_ndcg@10']:.4f}" if "test_ndcg@10" in r else ""
        print(f"{r['data']:18}{r['objective']:11}{r['search']:7}{r['median_s']:>10.4f}"
              f"{r['gamma']:>9.4f}{r['validation']:>10.4f}{test:>14}{r['curve_points']:>8}{ratio:>12}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"repeats": args.repeats, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
