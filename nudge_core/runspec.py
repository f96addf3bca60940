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
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import registry
from .data import Dataset, QuerySet, load_dataset, load_query_set
from .errors import SpecError
from .exact_path import parse_objective
from .gamma_path import GammaSpec, parse_number  # noqa: F401  (parse_number: re-exported)
from .nudge import CHOOSE_RULES
from .runflags import RaisingParser, add_arguments, check_every_flag, dest, flag_params
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
    ``max_file_mb``: refuse larger input files; ``indexes``: serving index specs
    (:mod:`nudge_core.serving.specs`) every method is also evaluated through; ``tune_for_index``:
    also choose each NUDGE method's γ on validation through each of those indexes (one switch for
    every spec: the spec text stays the index's own settings and the results' key).
    """

    dataset: str = ""
    model: str | None = None
    split: SplitSpec = field(default_factory=SplitSpec)
    methods: tuple = ()
    ood: str | None = None
    max_file_mb: float | None = None
    indexes: tuple[str, ...] = ()
    tune_for_index: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "indexes", tuple(self.indexes))
        if not isinstance(self.tune_for_index, bool):
            raise SpecError(f"--tune-for-index: must be true or false, got {self.tune_for_index!r}")
        if self.tune_for_index and not self.indexes:
            raise SpecError("--tune-for-index: give at least one --index to tune for")
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
        if self.tune_for_index and not self.tuned_names:
            raise SpecError("--tune-for-index: no chosen method has a γ chosen on validation "
                            f"(methods {','.join(self.names)}; a fixed γ is not chosen)")
        if self.max_file_mb is not None and not (isinstance(self.max_file_mb, (int, float))
                                                 and 0 < self.max_file_mb < 2**40):
            raise SpecError(f"--max-file-mb: must be a positive number of MiB, got {self.max_file_mb!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.methods)

    @property
    def tuned_names(self) -> tuple[str, ...]:
        """The methods whose γ ``tune_for_index`` re-chooses: those with a γ that is chosen on
        validation (not fixed)."""
        return tuple(m.name for m in self.methods
                     if registry.get(m.name).gamma is not None and m.gamma.mode != "fixed")

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
        for p in flag_params():
            if p.flag in flags and flags[p.flag] != p.default:
                opt(p.flag, str(flags[p.flag]))
        if self.max_file_mb is not None:
            opt("--max-file-mb", repr(float(self.max_file_mb)))
        for text in self.indexes:
            opt("--index", text)
        if self.tune_for_index:
            argv.append("--tune-for-index")
        argv.extend(extra)
        if self.dataset.startswith("-"):
            return argv + ["--", self.dataset]
        return argv[:1] + [self.dataset] + argv[1:]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "RunSpec":
        """From a namespace parsed by a parser that :func:`add_arguments` set up. Every γ and
        parameter flag given is checked, also when none of the chosen methods uses it."""
        check_every_flag(args)
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
            params = {p.name: getattr(args, dest(p.flag)) for p in spec.params}
            choice = {} if spec.gamma is None else {"objective": args.objective, "choose": args.choose}
            methods.append(MethodSettings(name, gamma, params, **choice))
        return cls(args.dataset, args.embeddings, split, tuple(methods), args.ood, args.max_file_mb,
                   tuple(args.index or ()), args.tune_for_index)

    @classmethod
    def from_argv(cls, argv: list[str]) -> "RunSpec":
        parser = RaisingParser(prog="nudge-explorer run")
        add_arguments(parser)
        return cls.from_args(parser.parse_args(argv[1:] if argv[:1] == ["run"] else argv))

    # ------------------------------------------------------------ JSON
    def to_json(self) -> dict:
        return {"dataset": self.dataset, "model": self.model, "split": asdict(self.split),
                "methods": [{"name": m.name, "gamma": str(m.gamma), "params": dict(m.params),
                             "objective": m.objective, "choose": m.choose} for m in self.methods],
                "ood": self.ood, "max_file_mb": self.max_file_mb, "indexes": list(self.indexes),
                "tune_for_index": self.tune_for_index,
                "argv": self.to_argv()}

    @classmethod
    def from_json(cls, obj: dict) -> "RunSpec":
        methods = tuple(MethodSettings(m["name"], GammaSpec.parse(m["gamma"]), m["params"],
                                       m.get("objective"), m.get("choose", "smallest"))
                        for m in obj["methods"])
        return cls(obj["dataset"], obj["model"], SplitSpec(**obj["split"]), methods, obj["ood"],
                   obj["max_file_mb"], tuple(obj.get("indexes", ())),
                   bool(obj.get("tune_for_index", False)))

    def key(self) -> str:
        """A content key of every setting (for caches; data content is keyed separately)."""
        text = json.dumps(self.to_json(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


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
