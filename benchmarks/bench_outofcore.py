#!/usr/bin/env python
"""Out-of-core NUDGE benchmark: the whole ``nudge-explorer run`` on sharded synthetic corpora.

(a) For each ``--sizes`` n: n x 384 float32 records written shard by shard (``--shard-rows``,
memory-mapped, in a temporary folder deleted afterwards) with 10,000 labelled queries (paper
split: 1,000 validation, 2,000 test, 7,000 training; each query a noisy mix of 1-2 records).
``nudge-explorer run DIR --methods none,nudge-n`` runs in a fresh process under
``/usr/bin/time -v``: wall seconds, peak RSS (maximum resident set size), NUDGE-N fit seconds
(``fit_seconds`` of the JSON), evaluation seconds (the run's ``seconds`` minus every fit), and
the same for the in-memory path (one ``corpus.npy``) for n <= ``--in-memory-max``.
(b) For ``--dask-rows`` n: the same run with ``--backend dask --workers 1`` and ``2`` (a
LocalCluster started by the run, its start included in the wall time), against the single process.

Times are from whatever machine runs it (when first run: a 2-core VM shared with other jobs, so
they are noisy upper bounds). Prints a table and writes JSON (``--out``); asserts nothing.

    python benchmarks/bench_outofcore.py --sizes 1000000 --dask-rows 300000
    python benchmarks/bench_outofcore.py --sizes 1000000,3000000,10000000 --dask-rows 3000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384
N_QUERIES = 10_000
BLOCK = 250_000
MIB = 2 ** 20


def generate(folder: Path, n: int, shard_rows: int, single: bool, seed: int = 0) -> None:
    """A dataset folder: sharded corpus (and ``single``: also one corpus.npy), queries, qrels."""
    rng = np.random.default_rng(seed)
    emb = folder / "emb" / "synthetic"
    (emb / "corpus").mkdir(parents=True)
    (folder / "qrels").mkdir()
    one = np.lib.format.open_memmap(emb / "corpus.npy", "w+", np.float32, (n, DIM)) if single else None
    entries = []
    for j, start in enumerate(range(0, n, shard_rows)):
        stop = min(start + shard_rows, n)
        name = f"shard-{j:05d}.npy"
        out = np.lib.format.open_memmap(emb / "corpus" / name, "w+", np.float32, (stop - start, DIM))
        for a in range(start, stop, BLOCK):
            b = min(a + BLOCK, stop)
            block = rng.standard_normal((b - a, DIM), dtype=np.float32)
            out[a - start:b - start] = block
            if one is not None:
                one[a:b] = block
        out.flush()
        del out
        entries.append([name, stop - start])
    (emb / "corpus" / "manifest.json").write_text(json.dumps({"shards": entries}))
    if one is not None:
        one.flush()
        del one
        single_dir = folder.parent / (folder.name + "-single")
        (single_dir / "emb" / "synthetic").mkdir(parents=True)
        os.replace(emb / "corpus.npy", single_dir / "emb" / "synthetic" / "corpus.npy")
    with open(emb / "corpus_ids.txt", "w") as fh:
        for a in range(0, n, BLOCK):
            fh.write("".join(f"d{i}\n" for i in range(a, min(a + BLOCK, n))))
    answers = [rng.choice(n, size=int(rng.integers(1, 3)), replace=False) for _ in range(N_QUERIES)]
    corpus = _Rows(emb / "corpus", entries)
    queries = np.stack([corpus.mean_unit(a) for a in answers])
    queries += 0.15 * rng.standard_normal(queries.shape, dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    np.save(emb / "queries.npy", queries.astype(np.float32))
    (emb / "query_ids.txt").write_text("".join(f"q{j}\n" for j in range(N_QUERIES)))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{j}\td{a}\t1\n" for j, ans in enumerate(answers) for a in ans))
    if single:
        for name in ("corpus_ids.txt", "queries.npy", "query_ids.txt"):
            shutil.copyfile(emb / name, single_dir / "emb" / "synthetic" / name)
        shutil.copytree(folder / "qrels", single_dir / "qrels")


class _Rows:
    """Reads rows of the sharded corpus being generated (to build queries from their answers)."""

    def __init__(self, folder: Path, entries) -> None:
        self.folder, self.names = folder, [e[0] for e in entries]
        self.offsets = np.concatenate([[0], np.cumsum([e[1] for e in entries])])

    def mean_unit(self, rows) -> np.ndarray:
        vecs = []
        for r in rows:
            i = int(np.searchsorted(self.offsets, r, side="right") - 1)
            v = np.load(self.folder / self.names[i], mmap_mode="r")[r - self.offsets[i]]
            vecs.append(v / np.linalg.norm(v))
        return np.mean(vecs, axis=0)


def run_cli(folder: Path, extra: list[str]) -> dict:
    """One ``nudge-explorer run`` under /usr/bin/time -v: wall s, peak RSS MiB, fit/eval s."""
    out = folder.parent / "result.json"
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "nudge_core.cli", "run", str(folder),
           "--methods", "none,nudge-n", "--no-per-query", "--out", str(out), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    res = json.loads(out.read_text())
    fits = sum(m["fit_seconds"] for m in res["methods"].values())
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(peak_kb / 1024, 1),
            "nudge_n_fit_s": res["methods"]["nudge-n"]["fit_seconds"],
            "eval_s": round(res["seconds"] - fits, 2), "gamma": res["methods"]["nudge-n"]["gamma"],
            "ndcg@10": res["methods"]["nudge-n"]["metrics"]["ndcg@10"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000", help="comma-separated corpus sizes for (a)")
    ap.add_argument("--dask-rows", type=int, default=300_000, help="corpus size for (b); 0 = skip")
    ap.add_argument("--shard-rows", type=int, default=250_000)
    ap.add_argument("--in-memory-max", type=int, default=1_000_000,
                    help="also run the in-memory path up to this size")
    ap.add_argument("--tmp", default=None, help="where to write the temporary data")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_outofcore.json"))
    args = ap.parse_args()
    rows = []
    shard_mib = args.shard_rows * DIM * 4 / MIB

    def write() -> None:  # after every row: a 10M run takes many minutes
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "command": "python benchmarks/bench_outofcore.py " + " ".join(sys.argv[1:]),
            "queries": {"labelled": N_QUERIES, "val": 1000, "test": 2000},
            "shard_rows": args.shard_rows,
            "memory_bound_mib": {"shard": round(shard_mib, 1), "plus": 500,
                                 "what": "issue 16's target: one shard + the active set + 500 MB"},
            "rows": rows}, indent=1))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    plan = [(n, "a") for n in sizes] + ([(args.dask_rows, "b")] if args.dask_rows else [])
    for n, part in plan:
        tmp = Path(tempfile.mkdtemp(prefix="nudge-ooc-", dir=args.tmp))
        try:
            single = part == "a" and n <= args.in_memory_max
            t0 = time.perf_counter()
            generate(tmp / "data", n, args.shard_rows, single)
            print(f"generated {n:,} x {DIM} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            configs = ([("out-of-core", tmp / "data", [])]
                       + ([("in-memory", tmp / "data-single", ["--in-memory"])] if single else [])) if part == "a" else \
                [("single process", tmp / "data", []),
                 ("dask 1 worker", tmp / "data", ["--backend", "dask", "--workers", "1"]),
                 ("dask 2 workers", tmp / "data", ["--backend", "dask", "--workers", "2"])]
            for label, folder, extra in configs:
                r = {"part": part, "n": n, "path": label, "corpus_mib": round(n * DIM * 4 / MIB, 1),
                     **run_cli(folder, extra), "load_average_1min": round(os.getloadavg()[0], 2)}
                single_run = [x for x in rows if x["part"] == "b" and x["n"] == n
                              and x["path"] == "single process"]
                if part == "b" and single_run and label != "single process":
                    r["wall_over_single_process"] = round(r["wall_s"] / single_run[0]["wall_s"], 3)
                rows.append(r)
                print(json.dumps(r), file=sys.stderr)
                write()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    head = (f"{'part':5}{'n':>11}  {'path':16}{'corpus MiB':>11}{'wall s':>9}{'fit s':>8}{'eval s':>8}"
            f"{'peak MiB':>10}{'vs single':>10}{'load':>6}")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        ratio = r.get("wall_over_single_process")
        print(f"{r['part']:5}{r['n']:>11,}  {r['path']:16}{r['corpus_mib']:>11.0f}{r['wall_s']:>9.1f}"
              f"{r['nudge_n_fit_s']:>8.1f}{r['eval_s']:>8.1f}{r['peak_rss_mib']:>10.0f}"
              f"{'' if ratio is None else f'{ratio:.2f}x':>10}{r['load_average_1min']:>6.1f}")
    print(f"memory bound (one {args.shard_rows:,}-row shard + 500 MB, active set aside): "
          f"{shard_mib + 500:,.0f} MiB")
    write()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
