"""One experiment: fit the chosen methods on a split, evaluate before/after, compare, OOD checks.

:func:`run_experiment` is what the CLI and the app call; :class:`ExperimentResult` holds every
number they show and :meth:`ExperimentResult.to_json` is the CLI's JSON schema.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .baselines import LinearAdaptor
from .data import Dataset, QuerySet
from .metrics import KS, evaluate, mean_metrics
from .nudge import NudgeM, NudgeN
from .retrieval import normalize_rows, search
from .significance import paired_comparison
from .splits import Split

METHODS = ("none", "adaptor", "nudge-m", "nudge-n")
#: Metrics compared before vs after with a bootstrap interval and a paired test.
COMPARED = ("ndcg@10", "recall@10", "mrr@10")

Progress = Callable[[float, str], None]


@dataclass
class Settings:
    """User-chosen constraint bounds. ``None`` γ = choose on validation queries."""

    methods: tuple[str, ...] = METHODS
    gamma_m: float | None = None
    gamma_n: float | None = None
    gammas_n: tuple[float, ...] | None = None
    val_k: int = 1
    adaptor_epochs: int = 200

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {self.methods}")
        if "none" not in self.methods:
            self.methods = ("none",) + tuple(self.methods)


@dataclass
class MethodResult:
    """A fitted method and its test evaluation. ``embeddings`` (n, d) float32 is what is searched
    (``metric`` "ip" or "cos"); ``estimator`` is the fitted object (None for "none")."""

    name: str
    gamma: float | None
    fit_seconds: float
    metric: str
    per_query: dict[str, np.ndarray]
    embeddings: np.ndarray | None = None
    estimator: object | None = None
    ood_per_query: dict[str, np.ndarray] | None = None
    comparison: dict[str, dict[str, float]] = field(default_factory=dict)
    ood_comparison: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        return mean_metrics(self.per_query)

    @property
    def ood_metrics(self) -> dict[str, float] | None:
        return None if self.ood_per_query is None else mean_metrics(self.ood_per_query)


@dataclass
class ExperimentResult:
    dataset: Dataset
    split: Split
    settings: Settings
    methods: dict[str, MethodResult]
    test: QuerySet
    ood: QuerySet | None = None
    ood_source: str | None = None
    seconds: float = 0.0

    def to_json(self, per_query: bool = True) -> dict:
        """The CLI's JSON: dataset facts, split sizes, per-method metrics, curves and OOD."""
        def table(pq: dict[str, np.ndarray], ids: list[str]) -> dict[str, dict[str, float]]:
            return {qid: {m: float(v[j]) for m, v in pq.items()} for j, qid in enumerate(ids)}

        methods = {}
        for name, res in self.methods.items():
            est = res.estimator
            entry = {"gamma": res.gamma, "fit_seconds": round(res.fit_seconds, 4),
                     "metric": res.metric, "metrics": res.metrics,
                     "compared_to_none": res.comparison}
            if per_query:
                entry["per_query"] = table(res.per_query, self.test.ids)
            if hasattr(est, "curve_gammas_"):
                entry["gamma_curve"] = [[float(g), float(o)] for g, o in est.gamma_curve_]
                entry["validation_objective"] = float(est.objective_)
                entry["moved_records"] = int(len(est.moved_))
                entry["mean_shift"] = float(est.shift_.mean()) if len(est.shift_) else 0.0
            if isinstance(est, LinearAdaptor):
                entry["validation_curve"] = est.val_curve_.tolist()
                entry["best_epoch"] = est.best_epoch_
            methods[name] = entry
        out = {"dataset": self.dataset.name, "model": self.dataset.model,
               "n_records": self.dataset.n_records, "dim": self.dataset.dim,
               "splits": {"train": len(self.split.train), "val": len(self.split.val),
                          "test": len(self.split.test)},
               "split": self.split.description,
               "settings": {"methods": list(self.settings.methods), "gamma_m": self.settings.gamma_m,
                            "gamma_n": self.settings.gamma_n, "val_k": self.settings.val_k,
                            "gammas_n": None if self.settings.gammas_n is None
                            else list(self.settings.gammas_n)},
               "notes": list(self.dataset.notes), "methods": methods, "seconds": round(self.seconds, 3)}
        if self.ood is not None:
            out["ood"] = {"source": self.ood_source, "n_queries": len(self.ood),
                          "methods": {name: {"metrics": res.ood_metrics,
                                             "compared_to_none": res.ood_comparison,
                                             **({"per_query": table(res.ood_per_query, self.ood.ids)}
                                                if per_query else {})}
                                      for name, res in self.methods.items()}}
        return _json_safe(out)


def _json_safe(obj):
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _top_rows(queries: np.ndarray, base: np.ndarray) -> np.ndarray:
    return search(queries, base, max(KS))[1]


def run_experiment(dataset: Dataset, split: Split, settings: Settings | None = None,
                   ood: QuerySet | None = None, ood_source: str | None = None,
                   progress: Progress | None = None) -> ExperimentResult:
    """Fit every method in ``settings`` on ``split`` and evaluate it on the test queries.

    OOD queries come from ``split.ood`` (k-means protocol) or ``ood`` (a second query set).
    ``progress(fraction, message)`` is called as work advances.
    """
    settings = settings or Settings()
    report = progress or (lambda f, m: None)
    t0 = time.perf_counter()
    train, val, test = (dataset.queries(ids) for ids in (split.train, split.val, split.test))
    if ood is None and split.ood:
        ood, ood_source = dataset.queries(split.ood), "kmeans"
    report(0.02, "normalising records")
    normalized = normalize_rows(dataset.corpus_emb)
    results: dict[str, MethodResult] = {}
    steps = len(settings.methods)
    for i, name in enumerate(settings.methods):
        report(0.05 + 0.9 * i / steps, f"fitting {name}")
        q_test, q_ood = test.emb, ood.emb if ood is not None else None
        if name == "none":
            est, base, gamma, seconds, metric = None, normalized, None, 0.0, "cos"
        elif name == "adaptor":
            est = LinearAdaptor(max_epochs=settings.adaptor_epochs).fit(normalized, train, val)
            base, gamma, seconds, metric = normalized, None, est.fit_seconds_, "cos"
            q_test = est.transform_queries(test.emb)
            q_ood = est.transform_queries(ood.emb) if ood is not None else None
        else:
            est = NudgeM(settings.gamma_m) if name == "nudge-m" else \
                NudgeN(settings.gamma_n, settings.gammas_n, settings.val_k)
            est.fit(dataset.corpus_emb, train, val)
            base, gamma, seconds, metric = est.embeddings_, est.gamma_, est.fit_seconds_, est.metric
        res = MethodResult(name, gamma, seconds, metric, evaluate(_top_rows(q_test, base), test),
                           embeddings=base, estimator=est)
        if ood is not None:
            res.ood_per_query = evaluate(_top_rows(q_ood, base), ood)
        results[name] = res
    report(0.96, "comparing with no fine-tuning")
    baseline = results["none"]
    for name, res in results.items():
        if name == "none":
            continue
        res.comparison = {m: paired_comparison(baseline.per_query[m], res.per_query[m])
                          for m in COMPARED}
        if ood is not None:
            res.ood_comparison = {m: paired_comparison(baseline.ood_per_query[m], res.ood_per_query[m])
                                  for m in COMPARED}
    report(1.0, "done")
    return ExperimentResult(dataset, split, settings, results, test, ood, ood_source,
                            time.perf_counter() - t0)
