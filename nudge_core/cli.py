"""Command line: ``nudge-explorer run DATASET ...`` fits, evaluates, prints a table, writes JSON;
``nudge-explorer embed DATASET`` embeds a dataset's texts (:mod:`nudge_core.text_embed`).

Bad input exits with status 2 and one line ``error: <file, line: what was expected>``; no
traceback (set NUDGE_DEBUG=1 to see one for an unexpected failure).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np

from .errors import DataError
from .experiment import ExperimentResult, run_experiment
from .runspec import RunSpec, SpecError, add_arguments, load_run
from .shards import OUT_OF_CORE_MIB


class CliError(Exception):
    """A usage error reported as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (main prints it) instead of usage + exit."""

    def error(self, message: str):
        raise CliError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nudge-explorer",
                     description="Fine-tune retrieval embeddings with NUDGE.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="fit methods on a dataset and evaluate them")
    add_arguments(run)
    run.add_argument("--out", metavar="JSON", help="write the results JSON here")
    run.add_argument("--no-per-query", action="store_true", help="leave per-query rows out of JSON")
    run.add_argument("--save-embeddings", metavar="DIR",
                     help="write each method's searched embeddings as DIR/<method>/corpus.npy + ids")
    run.add_argument("--backend", choices=("local", "dask"), default="local",
                     help="where a sharded corpus is searched: this process (default) or Dask "
                          "(a LocalCluster unless --scheduler names one); results are identical")
    run.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                     help="with --backend dask: the scheduler of a running Dask cluster")
    run.add_argument("--workers", type=int, default=2,
                     help="with --backend dask and no --scheduler: local worker processes (default 2)")
    run.add_argument("--in-memory", action="store_true",
                     help="keep a large one-file corpus on the in-memory path (by default a "
                          f"float32 corpus.npy of {OUT_OF_CORE_MIB} MiB or more is searched out of "
                          "core: same results, peak memory about one corpus instead of three)")
    shard = sub.add_parser("shard", help="copy a dataset with its corpus split into row-shards "
                                          "(memory-mapped, searched out of core)")
    shard.add_argument("dataset", help="dataset folder")
    shard.add_argument("--rows", type=int, required=True, help="records per shard")
    shard.add_argument("--out", required=True, metavar="NEW_DIR", help="new dataset folder to write")
    shard.add_argument("--model", help="embedding set (emb/<model>/) when there are several")
    embed = sub.add_parser("embed", help="embed a dataset's corpus.jsonl and queries.jsonl into "
                                          "emb/<model>/ (text mode; needs the 'text' extra)")
    embed.add_argument("dataset", help="dataset folder with corpus.jsonl[.gz] and queries.jsonl")
    embed.add_argument("--model-dir", metavar="DIR",
                       help="a sentence-transformers model folder (default: the bundled "
                            "all-MiniLM-L6-v2)")
    embed.add_argument("--batch-size", type=int, default=32, help="texts per batch (default 32)")
    embed.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads (default: every CPU this process may use)")
    return parser


def embed(args: argparse.Namespace) -> int:
    from .text_embed import embed_folder

    for flag, value in (("--batch-size", args.batch_size), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise CliError(f"{flag}: must be an integer >= 1, got {value}")

    def progress(fraction: float, message: str) -> None:
        print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    target = embed_folder(args.dataset, model_dir=args.model_dir, batch_size=args.batch_size,
                          threads=args.threads, progress=progress)
    print(f"wrote {target}")
    return 0


def shard(args: argparse.Namespace) -> int:
    from .shards import shard_dataset

    if args.rows < 1:
        raise CliError(f"--rows: must be an integer >= 1, got {args.rows}")
    if not Path(args.dataset).is_dir():
        raise CliError(f"{args.dataset}: expected a dataset folder (unzip an archive first)")
    emb = shard_dataset(args.dataset, args.rows, args.out, args.model)
    print(f"wrote {emb}/corpus/ ({len(list((emb / 'corpus').glob('*.npy')))} shards); "
          f"run it with: nudge-explorer run {args.out}")
    return 0


def _backend(args: argparse.Namespace, build: bool = True):
    """None (this process) or a DaskBackend, from --backend / --scheduler / --workers."""
    if args.scheduler and args.backend != "dask":
        raise CliError("--scheduler needs --backend dask")
    if args.workers < 1:
        raise CliError(f"--workers: must be an integer >= 1, got {args.workers}")
    if build is False or args.backend != "dask":
        return None
    from .dask_backend import DaskBackend

    return DaskBackend(scheduler=args.scheduler, n_workers=args.workers)


def _route_out_of_core(ds, args: argparse.Namespace, spec: RunSpec):
    """``ds`` with a large one-file corpus on the out-of-core path (:func:`~nudge_core.shards.
    route_out_of_core`), unless ``--in-memory`` or ``--index`` (serving indexes are built in memory)."""
    if args.in_memory or spec.indexes:
        return ds
    from .shards import route_out_of_core

    note = route_out_of_core(ds)
    if note:
        print(f"note: {note}; --in-memory keeps it in memory, nudge-explorer shard splits it",
              file=sys.stderr)
    return ds


def format_table(result: ExperimentResult) -> str:
    """A plain-text table of test metrics per method (and OOD NDCG@10 when there is an OOD set)."""
    cols = ["ndcg@10", "recall@10", "mrr@10", "ndcg@1", "recall@40"]
    head = f"{'method':<10}{'gamma':>9}{'fit s':>9}" + "".join(f"{c:>11}" for c in cols)
    if result.ood is not None:
        head += f"{'OOD ndcg@10':>13}"
    head += f"{'Δndcg@10 [95% CI]':>28}{'p':>8}"
    lines = [head, "-" * len(head)]
    for name, res in result.methods.items():
        m = res.metrics
        gamma = "" if res.gamma is None else f"{res.gamma:.4f}"
        row = f"{name:<10}{gamma:>9}{res.fit_seconds:>9.2f}" + "".join(f"{m[c]:>11.4f}" for c in cols)
        if result.ood is not None:
            row += f"{res.ood_metrics['ndcg@10']:>13.4f}"
        cmp = res.comparison.get("ndcg@10")
        if cmp:
            row += f"{cmp['delta']:>+10.4f} [{cmp['ci_low']:+.3f}, {cmp['ci_high']:+.3f}]"
            row += f"{cmp['p_value']:>8.3g}"
        lines.append(row)
    return "\n".join(lines)


def format_serving(serving: dict) -> str:
    """NDCG@10 per index and method, with the share of the exact-search gain each keeps."""
    lines = [f"{'index':34}{'method':10}{'ndcg@10':>9}{'gain kept':>11}{'bytes/rec':>11}{'ms/query':>10}"]
    for text, entry in serving.items():
        for method, m in entry["methods"].items():
            share = m.get("kept_share")
            lines.append(f"{text:34}{method:10}{m['metrics']['ndcg@10']:>9.4f}"
                         f"{'' if share is None else f'{share:.0%}':>11}"
                         f"{entry['bytes_per_record']:>11.0f}{(entry.get('query_ms') or 0):>10.3f}")
    return "\n".join(lines)


def _save_embeddings(result: ExperimentResult, folder: Path) -> None:
    for name, res in result.methods.items():
        target = folder / name
        target.mkdir(parents=True, exist_ok=True)
        if hasattr(res.embeddings, "write"):  # sharded: written shard by shard, never in memory
            res.embeddings.write(target / "corpus")
        else:
            np.save(target / "corpus.npy", np.asarray(res.embeddings, dtype=np.float32))
        (target / "corpus_ids.txt").write_text("\n".join(result.dataset.corpus_ids) + "\n",
                                               encoding="utf-8")
        for extra, array in res.estimator.serving_files().items():
            np.save(target / extra, array)


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse unwritable outputs before any file is read or anything is fitted."""
    if args.out and args.save_embeddings and Path(args.out).resolve() == Path(args.save_embeddings).resolve():
        raise CliError("--out and --save-embeddings name the same path; give a file and a folder")
    _check_writable("--out", args.out, folder=False)
    _check_writable("--save-embeddings", args.save_embeddings, folder=True)


def _check_writable(flag: str, path: str | None, folder: bool) -> None:
    """Fail before fitting, not after, when an output path cannot be written."""
    if not path:
        return
    target = Path(path)
    if not folder and target.exists() and not target.is_dir() and not target.is_file():
        raise CliError(f"{flag}: {path} is not a regular file (a device or a pipe); give a file name "
                       "such as result.json")
    if folder and target.exists() and not target.is_dir():
        raise CliError(f"{flag}: {path} exists and is not a folder")
    if not folder and target.is_dir():
        raise CliError(f"{flag}: {path} is a folder; give a file name such as result.json")
    parent = target if folder else target.parent
    existing = next((p for p in [parent, *parent.parents] if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"{flag}: cannot write under {existing} (not a writable folder)")
    if target.exists() and not folder and not os.access(target, os.W_OK):
        raise CliError(f"{flag}: {path} exists and is not writable")


def run(args: argparse.Namespace) -> int:
    spec = RunSpec.from_args(args)  # every setting checked before anything is read
    check_outputs(args)
    _backend(args, build=False)  # flags checked before anything is read
    ds, split, ood = load_run(spec)
    if spec.indexes:  # impossible index settings for these records: refused before any fit
        from .serving.specs import IndexSpec
        for text in spec.indexes:
            try:
                IndexSpec.parse(text).check(ds.n_records, ds.dim)
            except ValueError as exc:
                raise CliError(f"--index: {exc}") from None
    for note in ds.notes:
        print(f"note: {note}", file=sys.stderr)

    def progress(fraction: float, message: str) -> None:
        print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    ds = _route_out_of_core(ds, args, spec)
    backend = _backend(args) if hasattr(ds.corpus_emb, "unit_view") else None
    if args.backend == "dask" and backend is None:
        print("note: --backend dask applies to sharded corpora (nudge-explorer shard); this corpus "
              "is one file and runs in this process", file=sys.stderr)
    try:
        result = run_experiment(ds, split, spec, ood=ood, progress=progress, backend=backend)
        if args.save_embeddings and backend is not None:  # shards are written by the workers
            _write("--save-embeddings", args.save_embeddings,
                   lambda: _save_embeddings(result, Path(args.save_embeddings)))
            args.save_embeddings_done = True
            print(f"wrote embeddings under {args.save_embeddings}")
    finally:
        if backend is not None:
            backend.close()
            from .outofcore import LocalBackend
            for res in result.methods.values() if "result" in locals() else ():
                if hasattr(res.embeddings, "backend"):
                    res.embeddings.backend = LocalBackend()  # the cluster is gone: run here
    if spec.indexes:
        from .serving import evaluate_serving
        result.serving = evaluate_serving(result, spec.indexes, tune=spec.tune_for_index,
                                          progress=progress)
    sizes = ", ".join(f"{k} {v}" for k, v in split.sizes().items())
    print(f"{ds.name} / {ds.model}: {ds.n_records} records, dim {ds.dim}; queries: {sizes}")
    print(format_table(result))
    if result.serving:
        print(format_serving(result.serving))
    if args.out:
        _write("--out", args.out, lambda: (
            Path(args.out).parent.mkdir(parents=True, exist_ok=True),
            Path(args.out).write_text(json.dumps(result.to_json(not args.no_per_query), indent=1),
                                      encoding="utf-8")))
        print(f"wrote {args.out}")
    if args.save_embeddings and not getattr(args, "save_embeddings_done", False):
        _write("--save-embeddings", args.save_embeddings,
               lambda: _save_embeddings(result, Path(args.save_embeddings)))
        print(f"wrote embeddings under {args.save_embeddings}")
    return 0


def _write(flag: str, path: str, write) -> None:
    """Run ``write()``; a failure (disk full, permissions) names the flag and the path."""
    try:
        write()
    except OSError as exc:
        raise CliError(f"{flag}: could not write {path}: {exc.strerror or exc}") from None


class _Terminated(Exception):
    """SIGTERM, raised in the main thread so that temporary folders are removed on the way out."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        args = parser.parse_args(argv)
        if args.command == "run":
            return run(args)
        if args.command == "embed":
            return embed(args)
        if args.command == "shard":
            return shard(args)
    except (KeyboardInterrupt, _Terminated) as exc:  # temporary folders are gone by now
        print(f"error: {'interrupted' if isinstance(exc, KeyboardInterrupt) else 'terminated'} "
              "before the run finished; its temporary files are removed", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 143
    except (CliError, SpecError, DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: not enough memory for this dataset; try a smaller corpus or fewer methods",
              file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not bad input: say so in one line
        if os.environ.get("NUDGE_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set NUDGE_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 3
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
