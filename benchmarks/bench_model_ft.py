#!/usr/bin/env python
"""NUDGE against fine-tuning the model itself (full-ft, lora): quality, forgetting, wall time.

One :func:`nudge_core.run_experiment` per dataset with none, adaptor, NUDGE-M, NUDGE-N, full-ft
and lora on the paper split (seed 0) plus the k-means OOD protocol: test NDCG@10, OOD NDCG@10
(forgetting), wall time per method (full-ft / lora split into training and encoding seconds), and
the paper's two ratios — NUDGE-N fit time / full-ft fit time (paper: ~1/200) and NUDGE-N NDCG@10
gain / full-ft gain over no fine-tuning (paper: 3.3x). Printed as a table and written as JSON.

Model fine-tuning needs texts: SciFact (``../shared/datasets/scifact``) has them; the bundled
example ``sample_data/stdlib`` ships embeddings and query texts only, and its record texts are
rebuilt from the running interpreter (``nudge_core.examples.stdlib_docs.rebuilt_texts``, the text
that was embedded). OOD: SciFact uses the k-means protocol, the bundled example its own OOD query
set (``sample_data/stdlib/ood``, error messages and keyword queries; its texts are re-encoded by
the tuned models). On a 2-core CPU every full-ft / lora epoch
re-encodes the whole corpus (SciFact: ~220 s per pass on 2 idle cores, 5,183 abstracts at 256
tokens), so re-encoding, not training, dominates; ``--max-records`` cuts the corpus (and the
queries whose records no longer fit) to make a smaller, faster run (stated in the JSON).

    python benchmarks/bench_model_ft.py --epochs 1 --out benchmarks/results/bench_model_ft.json
    python benchmarks/bench_model_ft.py --quick --out /tmp/m.json   # 400 records, smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from nudge_core import registry, run_experiment
from nudge_core.data import Dataset, load_dataset, load_query_set
from nudge_core.examples.stdlib_docs import rebuilt_texts
from nudge_core.runspec import MethodSettings, RunSpec, SplitSpec, make_split

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATASETS = {"scifact": REPO.parent / "shared" / "datasets" / "scifact",
            "stdlib": REPO / "sample_data" / "stdlib"}
#: OOD queries per dataset: a query-set folder, or the k-means protocol
OOD = {"scifact": "kmeans", "stdlib": REPO / "sample_data" / "stdlib" / "ood"}
DEFAULT_OUT = HERE / "results" / "bench_model_ft.json"
METHODS = tuple(registry.names())  # every registered method, model fine-tuning included


def shrink(ds: Dataset, max_records: int) -> Dataset:
    """``ds`` cut to ``max_records``: the queries (in order) whose judged records still fit, their
    records, then the first other records (ids kept)."""
    keep: list[str] = []
    qrels = {}
    for q, judged in ds.qrels.items():
        new = [d for d in judged if d not in set(keep)]
        if len(keep) + len(new) <= max_records:
            keep += new
            qrels[q] = judged
    kept = set(keep)
    keep += [c for c in ds.corpus_ids if c not in kept][:max(0, max_records - len(keep))]
    rows = [ds.record_row[c] for c in keep]
    return Dataset(name=ds.name, model=ds.model, corpus_ids=keep,
                   corpus_emb=np.asarray(ds.corpus_emb[rows], np.float32), query_ids=ds.query_ids,
                   query_emb=ds.query_emb, qrels=qrels,
                   qrels_files={f: {q: j for q, j in part.items() if q in qrels}
                                for f, part in ds.qrels_files.items()},
                   corpus_text={c: ds.corpus_text[c] for c in keep}, query_text=ds.query_text,
                   notes=ds.notes + [f"benchmark: cut to {len(keep)} records, {len(qrels)} queries"],
                   source=ds.source)


def bench(name: str, path: Path, args) -> dict:
    ds = load_dataset(path)
    ds.corpus_text = ds.corpus_text or rebuilt_texts(ds)
    if not ds.corpus_text or not ds.query_text:
        return {"skipped": "no corpus.jsonl / queries.jsonl texts: model fine-tuning needs them"}
    if args.max_records and ds.n_records > args.max_records:
        ds = shrink(ds, args.max_records)
    split_spec = SplitSpec(seed=0)
    ood_source = OOD[name] if not args.max_records else "kmeans"  # a cut corpus lacks OOD answers
    kmeans = ood_source == "kmeans"
    split = make_split(split_spec, ds, kmeans=kmeans)
    ood = None if kmeans else load_query_set(ood_source, ds).queries
    ft = {"epochs": args.epochs, "batch_size": args.batch_size}
    methods = [MethodSettings(m, params={**ft, "lora_rank": args.lora_rank} if m == "lora" else
                              ft if m == "full-ft" else {}) for m in METHODS]
    spec = RunSpec(name, split=split_spec, methods=tuple(methods),
                   ood="kmeans" if kmeans else str(ood_source))
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = run_experiment(ds, split, spec, ood=ood, progress=lambda f, m: print(
        f"  [{f:4.0%}] {m}", file=sys.stderr, flush=True) if args.verbose else None)
    rows = {}
    base = result.methods["none"]
    for m, res in result.methods.items():
        row = {"ndcg@10": res.metrics["ndcg@10"], "ood_ndcg@10": res.ood_metrics["ndcg@10"],
               "gain": res.metrics["ndcg@10"] - base.metrics["ndcg@10"],
               "ood_gain": res.ood_metrics["ndcg@10"] - base.ood_metrics["ndcg@10"],
               "fit_seconds": res.fit_seconds}
        extra = res.estimator.describe()
        for key in ("train_seconds", "encode_seconds", "trainable_parameters", "epochs_run",
                    "best_epoch"):
            if key in extra:
                row[key] = extra[key]
        rows[m] = row
    n, f = rows["nudge-n"], rows["full-ft"]
    return {"n_records": ds.n_records, "notes": ds.notes, "splits": split.sizes(),
            "ood": "k-means protocol" if kmeans else f"{Path(ood_source).name}/ ({len(ood)} queries)",
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - cpu0,  # all threads; less sensitive to load
            "load_average_1min": os.getloadavg()[0],
            "methods": rows,
            "ratios": {"nudge_n_time_over_full_ft_time": n["fit_seconds"] / f["fit_seconds"],
                       "nudge_n_gain_over_full_ft_gain": (n["gain"] / f["gain"]) if f["gain"] else None,
                       "paper": {"speed": "NUDGE ~200x faster", "gain": "NUDGE gains 3.3x larger"}}}


def table(name: str, res: dict) -> str:
    if "skipped" in res:
        return f"{name}: skipped ({res['skipped']})"
    head = f"{'method':<9}{'ndcg@10':>9}{'gain':>9}{'OOD':>9}{'OOD gain':>10}{'fit s':>10}" \
           f"{'train s':>9}{'encode s':>10}"
    lines = [f"{name}: {res['n_records']} records, split {res['splits']}, OOD {res.get('ood')}",
             head, "-" * len(head)]
    for m, r in res["methods"].items():
        lines.append(f"{m:<9}{r['ndcg@10']:>9.4f}{r['gain']:>+9.4f}{r['ood_ndcg@10']:>9.4f}"
                     f"{r['ood_gain']:>+10.4f}{r['fit_seconds']:>10.2f}"
                     f"{r.get('train_seconds', float('nan')):>9.1f}"
                     f"{r.get('encode_seconds', float('nan')):>10.1f}")
    ratio = res["ratios"]
    gain = ratio["nudge_n_gain_over_full_ft_gain"]
    lines.append(f"NUDGE-N time / full-ft time = {ratio['nudge_n_time_over_full_ft_time']:.2e} "
                 f"(paper: ~1/200); NUDGE-N gain / full-ft gain = "
                 f"{'n/a (full-ft gained nothing)' if gain is None else f'{gain:.2f}'} (paper: 3.3)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="scifact,stdlib")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--max-records", type=int, default=None,
                        help="keep the judged records and the first others up to this many")
    parser.add_argument("--quick", action="store_true", help="--max-records 400, one epoch")
    parser.add_argument("--verbose", action="store_true", help="progress lines on stderr")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    if args.quick:
        args.max_records, args.epochs = args.max_records or 400, 1
    out = {"meta": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "argv": sys.argv[1:], "epochs": args.epochs, "batch_size": args.batch_size,
                    "lora_rank": args.lora_rank, "max_records": args.max_records}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for name in args.datasets.split(","):
        out[name] = bench(name, DATASETS[name], args)
        print(table(name, out[name]), flush=True)
        # written after each dataset: a whole-corpus run takes tens of minutes per dataset
        Path(args.out).write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
