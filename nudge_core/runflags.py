"""The ``nudge-explorer run`` flags: the argparse side of :class:`~nudge_core.runspec.RunSpec`.

:func:`add_arguments` adds the run spec's flags to a parser (the γ flags and the method
parameter flags come from :mod:`nudge_core.registry`); :func:`check_every_flag` checks every γ
and parameter flag given, also those no chosen method uses. :meth:`RunSpec.from_args` turns the
parsed namespace into a spec and :meth:`RunSpec.to_argv` writes one back; this module holds no
spec logic of its own, only the flag table, its value parsers and the parser that raises
:class:`~nudge_core.errors.SpecError` instead of exiting.
"""

from __future__ import annotations

import argparse
import re

from . import registry
from .errors import SpecError
from .exact_path import parse_objective
from .gamma_path import GammaSpec, parse_number
from .nudge import CHOOSE_RULES
from .splits import SPLIT_LAYOUTS


class RaisingParser(argparse.ArgumentParser):
    """A parser whose usage errors raise :class:`SpecError` (the CLI prints it; pages show it)."""

    def error(self, message: str):
        raise SpecError(f"{self.prog}: {message}")


def dest(flag: str) -> str:
    """The namespace attribute of ``flag`` (``--val-k`` -> ``val_k``)."""
    return flag.lstrip("-").replace("-", "_")


def flag_params() -> list[registry.Param]:
    """Every registered method's parameters, one per flag."""
    out: dict[str, registry.Param] = {}
    for name in registry.names():
        for p in registry.get(name).params:
            out.setdefault(p.flag, p)
    return list(out.values())


def _methods_arg(text: str) -> tuple[str, ...]:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in names if m not in registry.names()]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown method(s) {bad or text!r}; choose from "
                                         f"{','.join(registry.names())}")
    return names


def _int_arg(flag: str):
    def parse(text: str) -> int:
        if not re.fullmatch(r"[+-]?\d{1,30}", text.strip()):
            raise argparse.ArgumentTypeError(f"{flag} expects an integer, got {text[:40]!r}")
        return int(text)
    return parse


def _number_arg(flag: str):
    def parse(text: str) -> float:
        try:
            return parse_number(text, flag)
        except SpecError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def add_arguments(run: argparse.ArgumentParser) -> None:
    """Add the run spec's flags to ``run`` (the CLI's ``run`` sub-command), from the registry."""
    run.add_argument("dataset", help="dataset folder (BEIR layout + emb/<model>/) or a .zip of one")
    run.add_argument("--embeddings", metavar="MODEL", help="which emb/<MODEL>/ set to use")
    run.add_argument("--methods", type=_methods_arg, default=None,
                     help=f"comma list from {','.join(registry.names())} "
                          f"(default: {','.join(registry.default_names())})")
    run.add_argument("--seed", type=_int_arg("--seed"), default=0,
                     help="split seed: the paper permutation, the qrels validation carve and k-means")
    how = run.add_mutually_exclusive_group()
    how.add_argument("--splits", metavar="JSON", help='explicit split {"train": [...], "val": [...], '
                     '"test": [...]}')
    how.add_argument("--qrels-splits", action="store_true",
                     help="use the dataset's qrels/train.tsv and test.tsv (val carved from train)")
    run.add_argument("--val-frac", type=_number_arg("--val-frac"), default=0.1,
                     help="validation share (default 0.1)")
    run.add_argument("--test-frac", type=_number_arg("--test-frac"), default=0.2,
                     help="paper split test share (default 0.2)")
    run.add_argument("--layout", choices=SPLIT_LAYOUTS, default=SPLIT_LAYOUTS[0],
                     help="which part takes the permutation's first positions")
    run.add_argument("--ood", metavar="kmeans|DIR",
                     help="k-means OOD split of the training queries, or a query-set folder")
    run.add_argument("--gamma", metavar="G", help="fixed γ for every method with a γ")
    for name in registry.gamma_methods():
        spec = registry.get(name)
        grid = spec.gamma.default_grid
        default = (f"the grid {grid[0]:g}:{grid[-1]:g}:{grid[1] - grid[0]:g}" if grid
                   else "chosen exactly on validation")
        run.add_argument(f"--gamma-{spec.gamma_flag}", metavar="auto|G|START:STOP:STEP|G1,G2",
                         help=f"{spec.label} γ: auto, fixed, a range or a list (auto: {default})")
    run.add_argument("--gamma-grid", metavar="START:STOP:STEP|G1,G2",
                     help="γ grid for the methods that search a grid by default")
    run.add_argument("--gamma-bounds", metavar="LOW:HIGH",
                     help="search γ exactly within [LOW, HIGH] (every γ method not set otherwise)")
    run.add_argument("--objective", metavar="hit@1|recall@K|ndcg@K|mrr@K",
                     help="validation objective that chooses γ (default: NUDGE-M hit@1, NUDGE-N "
                          "recall@val_k)")
    run.add_argument("--choose", choices=CHOOSE_RULES, default="smallest",
                     help="smallest γ reaching the best value (default), or the middle of the "
                          "widest best plateau (exact search only)")
    for p in flag_params():
        run.add_argument(p.flag, type=_int_arg(p.flag), default=p.default, help=p.help)
    run.add_argument("--max-file-mb", type=_number_arg("--max-file-mb"),
                     help="refuse input files larger than this")
    run.add_argument("--index", action="append", metavar="SPEC",
                     help="also evaluate every method through this serving index (repeatable): "
                          "exact, truncate:dim=128, int8, uint8, binary[:rescore=40], "
                          "hnsw:M=32,ef=64, ivf:nlist=64,nprobe=8, ivfpq:nlist=64,m=48,bits=8,nprobe=8")
    run.add_argument("--tune-for-index", action="store_true",
                     help="also choose each NUDGE method's γ on validation through each --index "
                          "and compare it with the float32-chosen γ served through that index")


def check_every_flag(args: argparse.Namespace) -> None:
    """Each γ flag against its method's bounds (``--gamma`` against the chosen methods that it
    sets), each parameter flag against its range, whether or not a chosen method uses it."""
    chosen = args.methods or registry.default_names()
    if args.gamma is not None:
        GammaSpec.parse(args.gamma, "--gamma")
    if args.objective is not None:
        try:
            parse_objective(args.objective)
        except ValueError as exc:
            raise SpecError(f"--objective: {exc}") from None
    for name in registry.gamma_methods():
        bounds, flag = registry.get(name).gamma, f"--gamma-{registry.get(name).gamma_flag}"
        own = getattr(args, dest(flag))
        uses_gamma = name in chosen and own is None
        for given, what in ((own, flag), (args.gamma if uses_gamma else None, "--gamma"),
                            (args.gamma_grid if bounds.default_grid else None, "--gamma-grid"),
                            (f"exact:{args.gamma_bounds}" if args.gamma_bounds else None,
                             "--gamma-bounds")):
            if given is not None:
                try:
                    GammaSpec.parse(given, what).check(bounds, what)
                except SpecError as exc:
                    used = f" (used by {name}; set {flag} separately)" if what == "--gamma" else ""
                    raise SpecError(f"{exc}{used}") from None
    for p in flag_params():
        p.check(getattr(args, dest(p.flag)))
