"""Command line: ``nudge-explorer run DATASET ...`` fits, evaluates, prints a table, writes JSON.

Bad input exits with status 2 and one line ``error: <file, line: what was expected>``; no
traceback (set NUDGE_DEBUG=1 to see one for an unexpected failure).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np

from .data import load_dataset, load_query_set
from .errors import DataError
from .experiment import COMPARED, METHODS, ExperimentResult, Settings, run_experiment
from .gamma_path import check_gamma
from .splits import SPLIT_LAYOUTS, kmeans_ood_split, paper_split, split_from_json, split_from_qrels_files


class CliError(Exception):
    """A usage error reported as one line."""


#: Most γ values a --gamma-grid may list (each one is a full validation pass).
MAX_GRID = 10000


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (main prints it) instead of usage + exit."""

    def error(self, message: str):
        raise CliError(f"{self.prog}: {message}")


def _methods(text: str) -> tuple[str, ...]:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown method(s) {bad or text!r}; choose from "
                                         f"{','.join(METHODS)}")
    return names


def _grid(text: str) -> tuple[float, ...]:
    """``START:STOP:STEP`` (STOP included when on the grid) or a comma list of γ values."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if not np.isfinite([start, stop, step]).all() or step <= 0 or stop < start:
                raise ValueError
            n = int(np.floor((stop - start) / step + 1e-9)) + 1
            grid = tuple(round(start + i * step, 12) for i in range(n)) if n <= MAX_GRID else ()
        else:
            grid = tuple(float(x) for x in text.split(","))
            if not np.isfinite(grid).all():
                raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:STOP:STEP or a comma list of finite "
                                         f"numbers, got {text!r}") from None
    if not grid or len(grid) > MAX_GRID:
        raise argparse.ArgumentTypeError(f"{text!r} gives more than {MAX_GRID} γ values")
    return grid


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nudge-explorer",
                     description="Fine-tune retrieval embeddings with NUDGE.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="fit methods on a dataset and evaluate them")
    run.add_argument("dataset", help="dataset folder (BEIR layout + emb/<model>/) or a .zip of one")
    run.add_argument("--embeddings", metavar="MODEL", help="which emb/<MODEL>/ set to use")
    run.add_argument("--methods", type=_methods, default=METHODS,
                     help=f"comma list from {','.join(METHODS)} (default: all)")
    how = run.add_mutually_exclusive_group()
    how.add_argument("--seed", type=int, default=0, help="paper-protocol split seed (default 0)")
    how.add_argument("--splits", metavar="JSON", help='explicit split {"train": [...], "val": [...], '
                     '"test": [...]}')
    how.add_argument("--qrels-splits", action="store_true",
                     help="use the dataset's qrels/train.tsv and test.tsv (val carved from train)")
    run.add_argument("--val-frac", type=float, default=0.1, help="paper split validation share")
    run.add_argument("--test-frac", type=float, default=0.2, help="paper split test share")
    run.add_argument("--layout", choices=SPLIT_LAYOUTS, default=SPLIT_LAYOUTS[0],
                     help="which part takes the permutation's first positions")
    run.add_argument("--ood", metavar="kmeans|DIR",
                     help="k-means OOD split of the training queries, or a query-set folder")
    run.add_argument("--gamma", type=float, help="fixed γ for both NUDGE methods (skip the search)")
    run.add_argument("--gamma-m", type=float, help="fixed γ for NUDGE-M")
    run.add_argument("--gamma-n", type=float, help="fixed γ for NUDGE-N")
    run.add_argument("--gamma-grid", type=_grid, help="NUDGE-N γ grid, START:STOP:STEP or a list "
                     "(default 0:0.48:0.02)")
    run.add_argument("--val-k", type=int, default=1, help="NUDGE-N validation recall@k (default 1)")
    run.add_argument("--adaptor-epochs", type=int, default=200, help="adaptor epoch cap")
    run.add_argument("--out", metavar="JSON", help="write the results JSON here")
    run.add_argument("--no-per-query", action="store_true", help="leave per-query rows out of JSON")
    run.add_argument("--save-embeddings", metavar="DIR",
                     help="write each method's searched embeddings as DIR/<method>/corpus.npy + ids")
    run.add_argument("--max-file-mb", type=float, help="refuse input files larger than this")
    return parser


def command_line(dataset: str, *, model: str | None, methods: tuple[str, ...], seed: int = 0,
                 splits: str | None = None, ood: str | None = None, gamma_m: float | None = None,
                 gamma_n: float | None = None, gammas_n: tuple[float, ...] | None = None,
                 val_k: int = 1, val_frac: float = 0.1, test_frac: float = 0.2,
                 out: str = "result.json") -> str:
    """The shell command that reproduces a run with these settings (for exports)."""
    parts = ["nudge-explorer", "run", dataset]
    if model:
        parts += ["--embeddings", model]
    parts += ["--methods", ",".join(methods)]
    parts += ["--splits", splits] if splits else ["--seed", str(seed)]
    if not splits and (val_frac, test_frac) != (0.1, 0.2):
        parts += ["--val-frac", f"{val_frac:g}", "--test-frac", f"{test_frac:g}"]
    if ood:
        parts += ["--ood", ood]
    if gamma_m is not None:
        parts += ["--gamma-m", repr(float(gamma_m))]
    if gamma_n is not None:
        parts += ["--gamma-n", repr(float(gamma_n))]
    if gammas_n is not None:
        parts += ["--gamma-grid", ",".join(f"{g:g}" for g in gammas_n)]
    if val_k != 1:
        parts += ["--val-k", str(val_k)]
    parts += ["--out", out]
    return shlex.join(parts)


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


def _save_embeddings(result: ExperimentResult, folder: Path) -> None:
    for name, res in result.methods.items():
        target = folder / name
        target.mkdir(parents=True, exist_ok=True)
        np.save(target / "corpus.npy", np.asarray(res.embeddings, dtype=np.float32))
        (target / "corpus_ids.txt").write_text("\n".join(result.dataset.corpus_ids) + "\n",
                                               encoding="utf-8")
        if res.name == "adaptor":
            np.save(target / "query_adaptor.npy", res.estimator.matrix_)


def check_args(args: argparse.Namespace) -> None:
    """Refuse impossible settings before any file is read or anything is fitted."""
    for flag, value, method in (("--gamma", args.gamma, "nudge-m"), ("--gamma-m", args.gamma_m, "nudge-m"),
                                ("--gamma-n", args.gamma_n, "nudge-n")):
        if value is not None:
            try:
                check_gamma(method, value)
            except ValueError as exc:
                raise CliError(f"{flag}: {exc}") from None
    if args.gamma is not None and args.gamma_n is None and "nudge-n" in args.methods:
        try:
            check_gamma("nudge-n", args.gamma)
        except ValueError as exc:
            raise CliError(f"--gamma (used by nudge-n): {exc}; set --gamma-n separately") from None
    for g in args.gamma_grid or ():
        try:
            check_gamma("nudge-n", g)
        except ValueError as exc:
            raise CliError(f"--gamma-grid: {exc}") from None
    for flag, value in (("--val-k", args.val_k), ("--adaptor-epochs", args.adaptor_epochs)):
        if value < 1:
            raise CliError(f"{flag} must be an integer >= 1, got {value}")
    if args.max_file_mb is not None and not args.max_file_mb > 0:
        raise CliError(f"--max-file-mb must be a positive number of MiB, got {args.max_file_mb}")
    if args.out and args.save_embeddings and Path(args.out).resolve() == Path(args.save_embeddings).resolve():
        raise CliError("--out and --save-embeddings name the same path; give a file and a folder")
    _check_writable("--out", args.out, folder=False)
    _check_writable("--save-embeddings", args.save_embeddings, folder=True)


def _check_writable(flag: str, path: str | None, folder: bool) -> None:
    """Fail before fitting, not after, when an output path cannot be written."""
    if not path:
        return
    target = Path(path)
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
    check_args(args)
    max_bytes = int(args.max_file_mb * 2**20) if args.max_file_mb is not None else None
    ds = load_dataset(args.dataset, args.embeddings, max_bytes=max_bytes)
    if args.splits:
        split = split_from_json(args.splits, ds)
    elif args.qrels_splits:
        split = split_from_qrels_files(ds, seed=args.seed, val_frac=args.val_frac)
    else:
        split = paper_split(ds.labelled_ids, seed=args.seed, val_frac=args.val_frac,
                            test_frac=args.test_frac, layout=args.layout)
    ood_queries = ood_source = None
    if args.ood == "kmeans":
        split = kmeans_ood_split(ds, split, seed=args.seed)
    elif args.ood:
        extra = load_query_set(args.ood, ds, max_bytes=max_bytes)
        ood_queries, ood_source = extra.queries, str(args.ood)
    gamma_m = args.gamma_m if args.gamma_m is not None else args.gamma
    gamma_n = args.gamma_n if args.gamma_n is not None else args.gamma
    settings = Settings(methods=args.methods, gamma_m=gamma_m, gamma_n=gamma_n,
                        gammas_n=args.gamma_grid, val_k=args.val_k,
                        adaptor_epochs=args.adaptor_epochs)
    for note in ds.notes:
        print(f"note: {note}", file=sys.stderr)

    def progress(fraction: float, message: str) -> None:
        print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    result = run_experiment(ds, split, settings, ood=ood_queries, ood_source=ood_source,
                            progress=progress)
    sizes = ", ".join(f"{k} {v}" for k, v in split.sizes().items())
    print(f"{ds.name} / {ds.model}: {ds.n_records} records, dim {ds.dim}; queries: {sizes}")
    print(format_table(result))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result.to_json(not args.no_per_query), indent=1),
                                  encoding="utf-8")
        print(f"wrote {args.out}")
    if args.save_embeddings:
        _save_embeddings(result, Path(args.save_embeddings))
        print(f"wrote embeddings under {args.save_embeddings}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "run":
            return run(args)
    except (CliError, DataError, ValueError) as exc:
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
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
