"""What to run, as one object: :class:`RunSpec`.

A run spec names the dataset, how its queries are split, the methods with their per-method
settings (γ automatic / fixed / range / grid, and the registry's parameters such as ``val_k``)
and the out-of-distribution source. It validates itself once, on construction, with errors that
name the CLI flag; it converts to and from the CLI's argument list exactly (a range stays a
range) and to and from JSON (recorded in every results file). The CLI, the app's pages, the
sensitivity sweep and the Export page build and read only this object; :func:`make_split` and
:func:`load_run` are the one place a split spec becomes a :class:`~nudge_core.splits.Split`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import registry
from .data import Dataset, QuerySet, load_dataset, load_query_set
from .errors import SpecError
from .exact_path import parse_objective
from .gamma_path import GammaSpec, parse_number
from .nudge import CHOOSE_RULES
from .splits import (SPLIT_LAYOUTS, Split, kmeans_ood_split, paper_split, split_from_dict,
                     split_from_json, split_from_qrels_files)

SPLIT_MODES = ("paper", "file", "qrels")


@dataclass(frozen=True)
class MethodSettings:
    """One method of a run: its registry name, γ (a :class:`GammaSpec`, or anything
    :meth:`GammaSpec.parse` takes), its registry parameters (defaults filled in) and, for a
    method with a γ, the validation ``objective`` (None = the method's own: NUDGE-M hit@1,
    NUDGE-N recall@val_k) and the ``choose`` rule ("smallest" or "plateau-middle", which needs an
    exact search)."""

    name: str
    gamma: GammaSpec | str | float | None = None
    params: dict = field(default_factory=dict)
    objective: str | None = None
    choose: str = "smallest"

    def __post_init__(self) -> None:
        spec = registry.get(self.name)
        gamma = self.gamma if isinstance(self.gamma, GammaSpec) else GammaSpec.parse(self.gamma)
        if spec.gamma is None and gamma.mode != "auto":
            raise SpecError(f"{self.name} has no γ to set")
        object.__setattr__(self, "gamma", gamma)
        unknown = set(self.params) - {p.name for p in spec.params}
        if unknown:
            raise SpecError(f"{self.name} has no setting {sorted(unknown)}; it has "
                            f"{[p.name for p in spec.params] or 'none'}")
        object.__setattr__(self, "params", {p.name: p.check(self.params.get(p.name, p.default))
                                            for p in spec.params})
        if spec.gamma is not None:
            gamma.check(spec.gamma, f"--gamma-{spec.gamma_flag}")
        elif self.objective is not None or self.choose != "smallest":
            raise SpecError(f"--objective / --choose: {self.name} has no γ to choose")
        if self.objective is not None:
            try:
                object.__setattr__(self, "objective", "@".join(map(str, parse_objective(
                    self.objective))))
            except ValueError as exc:
                raise SpecError(f"--objective: {exc}") from None
        if self.choose not in CHOOSE_RULES:
            raise SpecError(f"--choose: must be one of {', '.join(CHOOSE_RULES)}, got {self.choose!r}")
        exact = gamma.mode == "exact" or (gamma.mode == "auto" and spec.gamma is not None
                                          and spec.estimator.exact_by_default)
        if self.choose != "smallest" and not exact:
            raise SpecError(f"--choose {self.choose}: {self.name} needs an exact search for it "
                            f"(--gamma-{spec.gamma_flag} exact, or --gamma-bounds LOW:HIGH)")

    def build(self):
        """A fresh, unfitted estimator with these settings."""
        extra = {} if registry.get(self.name).gamma is None else \
            {"objective": self.objective, "choose": self.choose}
        return registry.get(self.name).build(**self.gamma.estimator_kwargs(), **self.params, **extra)


@dataclass(frozen=True)
class SplitSpec:
    """How queries are split: ``mode`` "paper" (one seeded permutation, ``val_frac`` /
    ``test_frac``, cut in ``layout`` order), "file" (``file``: a JSON split) or "qrels" (the
    dataset's train.tsv / test.tsv, validation carved from train with ``seed``, ``val_frac``).
    ``seed`` also seeds the k-means OOD split."""

    mode: str = "paper"
    seed: int = 0
    val_frac: float = 0.1
    test_frac: float = 0.2
    layout: str = SPLIT_LAYOUTS[0]
    file: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in SPLIT_MODES:
            raise SpecError(f"split mode must be one of {SPLIT_MODES}, got {self.mode!r}")
        if (self.mode == "file") != (self.file is not None):
            raise SpecError("--splits: a split file is given exactly when the split mode is 'file'")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) \
                or not 0 <= self.seed < 2**32:
            raise SpecError(f"--seed: must be an integer in [0, 2**32), got {self.seed!r}")
        for flag, value in (("--val-frac", self.val_frac), ("--test-frac", self.test_frac)):
            if not (isinstance(value, (int, float)) and 0 < value < 1):
                raise SpecError(f"{flag}: must be a number strictly between 0 and 1, got {value!r}")
        if self.mode == "paper" and self.val_frac + self.test_frac >= 1:
            raise SpecError(f"--val-frac + --test-frac must be < 1, got {self.val_frac} + "
                            f"{self.test_frac}")
        if self.layout not in SPLIT_LAYOUTS:
            raise SpecError(f"--layout: must be one of {SPLIT_LAYOUTS}, got {self.layout!r}")


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides a run's numbers (see the module docstring).

    ``dataset``: a folder or .zip (for in-memory datasets, a name); ``model``: its ``emb/<model>``
    set (None = the only one); ``methods``: :class:`MethodSettings` or bare names, the reference
    method is put first when missing; ``ood``: None, "kmeans" or a query-set folder;
    ``max_file_mb``: refuse larger input files.
    """

    dataset: str = ""
    model: str | None = None
    split: SplitSpec = field(default_factory=SplitSpec)
    methods: tuple = ()
    ood: str | None = None
    max_file_mb: float | None = None
    indexes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "indexes", tuple(self.indexes))
        if self.indexes:  # parsed (and so checked) here; faiss is imported only when asked for
            from .serving.specs import IndexSpec
            for text in self.indexes:
                try:
                    IndexSpec.parse(text)
                except ValueError as exc:
                    raise SpecError(f"--index: {exc}") from None
        names = self.methods or registry.default_names()
        methods = tuple(m if isinstance(m, MethodSettings) else MethodSettings(m) for m in names)
        seen = [m.name for m in methods]
        if len(set(seen)) != len(seen):
            raise SpecError(f"--methods: a method is listed twice: {','.join(seen)}")
        if registry.REFERENCE not in seen:
            methods = (MethodSettings(registry.REFERENCE),) + methods
        object.__setattr__(self, "methods", methods)
        if self.max_file_mb is not None and not (isinstance(self.max_file_mb, (int, float))
                                                 and 0 < self.max_file_mb < 2**40):
            raise SpecError(f"--max-file-mb: must be a positive number of MiB, got {self.max_file_mb!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.methods)

    def method(self, name: str) -> MethodSettings:
        for m in self.methods:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def max_bytes(self) -> int | None:
        return None if self.max_file_mb is None else int(self.max_file_mb * 2**20)

    def with_methods(self, *methods) -> "RunSpec":
        return replace(self, methods=tuple(methods))

    # ------------------------------------------------------------ the CLI's argument list
    def to_argv(self, *extra: str) -> list[str]:
        """``["run", DATASET, flags..., *extra]``: :meth:`from_argv` of it gives this spec back
        (values that start with '-' are written ``--flag=value``, such a dataset after ``--``).
        ``extra``: output flags (``--out``) placed among the flags."""
        argv = ["run"]

        def opt(flag: str, value: str) -> None:
            argv.extend([f"{flag}={value}"] if value.startswith("-") else [flag, value])
        if self.model:
            opt("--embeddings", self.model)
        opt("--methods", ",".join(self.names))
        s, default = self.split, SplitSpec()
        if s.mode == "file":
            opt("--splits", s.file)
        elif s.mode == "qrels":
            argv.append("--qrels-splits")
        opt("--seed", str(s.seed))
        if s.mode != "file" and s.val_frac != default.val_frac:
            opt("--val-frac", repr(s.val_frac))
        if s.mode == "paper" and s.test_frac != default.test_frac:
            opt("--test-frac", repr(s.test_frac))
        if s.mode == "paper" and s.layout != default.layout:
            opt("--layout", s.layout)
        if self.ood:
            opt("--ood", self.ood)
        flags: dict[str, int] = {}
        for flag, attr, default in (("--objective", "objective", None), ("--choose", "choose", "smallest")):
            values = {getattr(m, attr) for m in self.methods if registry.get(m.name).gamma is not None}
            if len(values) > 1:
                raise SpecError(f"{flag} differs between methods; the CLI sets one value")
            if values and values != {default}:
                opt(flag, values.pop())
        for m in self.methods:
            spec = registry.get(m.name)
            if m.gamma.mode != "auto":
                opt(f"--gamma-{spec.gamma_flag}", str(m.gamma))
            for p in spec.params:
                if flags.setdefault(p.flag, m.params[p.name]) != m.params[p.name]:
                    raise SpecError(f"{p.flag} differs between methods; the CLI sets one value")
        for p in _params():
            if p.flag in flags and flags[p.flag] != p.default:
                opt(p.flag, str(flags[p.flag]))
        if self.max_file_mb is not None:
            opt("--max-file-mb", repr(float(self.max_file_mb)))
        for text in self.indexes:
            opt("--index", text)
        argv.extend(extra)
        if self.dataset.startswith("-"):
            return argv + ["--", self.dataset]
        return argv[:1] + [self.dataset] + argv[1:]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "RunSpec":
        """From a namespace parsed by a parser that :func:`add_arguments` set up. Every γ and
        parameter flag given is checked, also when none of the chosen methods uses it."""
        _check_every_flag(args)
        if args.splits:
            split = SplitSpec("file", seed=args.seed, file=args.splits)
        elif args.qrels_splits:
            split = SplitSpec("qrels", seed=args.seed, val_frac=args.val_frac)
        else:
            split = SplitSpec("paper", seed=args.seed, val_frac=args.val_frac,
                              test_frac=args.test_frac, layout=args.layout)
        methods = []
        for name in args.methods or registry.default_names():
            spec = registry.get(name)
            gamma = GammaSpec()
            if spec.gamma is not None:
                given = getattr(args, f"gamma_{spec.gamma_flag}")
                if given is not None:
                    gamma = GammaSpec.parse(given, f"--gamma-{spec.gamma_flag}")
                elif args.gamma is not None:
                    gamma = GammaSpec.parse(args.gamma, "--gamma")
                elif args.gamma_bounds is not None:
                    gamma = GammaSpec.parse(f"exact:{args.gamma_bounds}", "--gamma-bounds")
                elif args.gamma_grid is not None and spec.gamma.default_grid is not None:
                    gamma = GammaSpec.parse(args.gamma_grid, "--gamma-grid")
            params = {p.name: getattr(args, _dest(p.flag)) for p in spec.params}
            choice = {} if spec.gamma is None else {"objective": args.objective, "choose": args.choose}
            methods.append(MethodSettings(name, gamma, params, **choice))
        return cls(args.dataset, args.embeddings, split, tuple(methods), args.ood, args.max_file_mb,
                   tuple(args.index or ()))

    @classmethod
    def from_argv(cls, argv: list[str]) -> "RunSpec":
        parser = _RaisingParser(prog="nudge-explorer run")
        add_arguments(parser)
        return cls.from_args(parser.parse_args(argv[1:] if argv[:1] == ["run"] else argv))

    # ------------------------------------------------------------ JSON
    def to_json(self) -> dict:
        return {"dataset": self.dataset, "model": self.model, "split": asdict(self.split),
                "methods": [{"name": m.name, "gamma": str(m.gamma), "params": dict(m.params),
                             "objective": m.objective, "choose": m.choose} for m in self.methods],
                "ood": self.ood, "max_file_mb": self.max_file_mb, "indexes": list(self.indexes),
                "argv": self.to_argv()}

    @classmethod
    def from_json(cls, obj: dict) -> "RunSpec":
        methods = tuple(MethodSettings(m["name"], GammaSpec.parse(m["gamma"]), m["params"],
                                       m.get("objective"), m.get("choose", "smallest"))
                        for m in obj["methods"])
        return cls(obj["dataset"], obj["model"], SplitSpec(**obj["split"]), methods, obj["ood"],
                   obj["max_file_mb"], tuple(obj.get("indexes", ())))

    def key(self) -> str:
        """A content key of every setting (for caches; data content is keyed separately)."""
        text = json.dumps(self.to_json(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


# ------------------------------------------------------------------ CLI flags
class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise SpecError(f"{self.prog}: {message}")


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _params() -> list[registry.Param]:
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
    for p in _params():
        run.add_argument(p.flag, type=_int_arg(p.flag), default=p.default, help=p.help)
    run.add_argument("--max-file-mb", type=_number_arg("--max-file-mb"),
                     help="refuse input files larger than this")
    run.add_argument("--index", action="append", metavar="SPEC",
                     help="also evaluate every method through this serving index (repeatable): "
                          "exact, truncate:dim=128, int8, uint8, binary[:rescore=40], "
                          "hnsw:M=32,ef=64, ivf:nlist=64,nprobe=8, ivfpq:nlist=64,m=48,bits=8,nprobe=8")


def _check_every_flag(args: argparse.Namespace) -> None:
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
        own = getattr(args, _dest(flag))
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
    for p in _params():
        p.check(getattr(args, _dest(p.flag)))


# ------------------------------------------------------------------ from spec to data
def make_split(spec: SplitSpec, dataset: Dataset, split_obj: object | None = None,
               kmeans: bool = False) -> Split:
    """The :class:`Split` a split spec describes (``split_obj``: the parsed split file, when the
    caller already has it, e.g. an upload); ``kmeans`` applies the k-means OOD protocol."""
    if spec.mode == "file":
        split = (split_from_dict(split_obj, dataset, spec.file) if split_obj is not None
                 else split_from_json(spec.file, dataset))
    elif spec.mode == "qrels":
        split = split_from_qrels_files(dataset, seed=spec.seed, val_frac=spec.val_frac)
    else:
        split = paper_split(dataset.labelled_ids, seed=spec.seed, val_frac=spec.val_frac,
                            test_frac=spec.test_frac, layout=spec.layout)
    if kmeans and not split.ood:
        split = kmeans_ood_split(dataset, split, seed=spec.seed)
    return split


def load_run(spec: RunSpec) -> tuple[Dataset, Split, QuerySet | None]:
    """Load the dataset, make the split and load the OOD query set a spec names (the CLI's path)."""
    dataset = load_dataset(spec.dataset, spec.model, max_bytes=spec.max_bytes)
    split = make_split(spec.split, dataset, kmeans=spec.ood == "kmeans")
    ood = None
    if spec.ood and spec.ood != "kmeans":
        ood = load_query_set(spec.ood, dataset, max_bytes=spec.max_bytes).queries
    return dataset, split, ood
