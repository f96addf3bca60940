"""One experiment: fit the chosen methods on a split, evaluate before/after, compare, OOD checks.

:func:`run_experiment` is what the CLI and the app call; :class:`ExperimentResult` holds every
number they show and :meth:`ExperimentResult.to_json` is the CLI's JSON schema.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from . import registry
from .data import Dataset, QuerySet
from .estimator import FineTuner
from .metrics import KS, evaluate, mean_metrics
from .progress import Progress, or_silent
from .retrieval import normalize_rows
from .runspec import RunSpec
from .significance import paired_comparison
from .splits import Split

#: Metrics compared before vs after with a bootstrap interval and a paired test.
COMPARED = ("ndcg@10", "recall@10", "mrr@10")
#: Rows of every method's ranking kept per query (the deepest cut-off reported).
TOP_K = max(KS)


@dataclass
class MethodResult:
    """A fitted method and its test evaluation.

    ``estimator``: the fitted :class:`~nudge_core.estimator.FineTuner` (its ``index_`` holds what
    is searched); ``test_top`` / ``ood_top``: (n_queries, TOP_K) record rows it retrieved, best
    first (row -1 pads a corpus smaller than TOP_K), so no page searches again; ``per_query``:
    :func:`metrics.evaluate` of ``test_top``.
    """

    name: str
    estimator: FineTuner
    test_top: np.ndarray
    per_query: dict[str, np.ndarray]
    ood_top: np.ndarray | None = None
    ood_per_query: dict[str, np.ndarray] | None = None
    comparison: dict[str, dict[str, float]] = field(default_factory=dict)
    ood_comparison: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def gamma(self) -> float | None:
        return self.estimator.gamma_

    @property
    def fit_seconds(self) -> float:
        return float(self.estimator.fit_seconds_)

    @property
    def metric(self) -> str:
        return registry.get(self.name).metric

    @property
    def embeddings(self) -> np.ndarray:
        """(n_records, d) float32 record vectors this method searches."""
        return self.estimator.index_.vectors

    @property
    def metrics(self) -> dict[str, float]:
        return mean_metrics(self.per_query)

    @property
    def ood_metrics(self) -> dict[str, float] | None:
        return None if self.ood_per_query is None else mean_metrics(self.ood_per_query)


@dataclass
class ExperimentResult:
    """Every number of one run: the spec it ran, the split, each method's result, test and OOD
    query sets. :meth:`to_json` is the CLI's results file."""

    dataset: Dataset
    split: Split
    spec: RunSpec
    methods: dict[str, MethodResult]
    test: QuerySet
    ood: QuerySet | None = None
    seconds: float = 0.0
    #: :func:`nudge_core.serving.evaluate_serving` of ``spec.indexes`` when asked for
    serving: dict | None = None

    @property
    def ood_source(self) -> str | None:
        return None if self.ood is None else self.spec.ood

    def to_json(self, per_query: bool = True) -> dict:
        """The CLI's JSON: dataset facts, split sizes, per-method metrics, curves and OOD."""
        def table(pq: dict[str, np.ndarray], ids: list[str]) -> dict[str, dict[str, float]]:
            return {qid: {m: float(v[j]) for m, v in pq.items()} for j, qid in enumerate(ids)}

        methods = {}
        for name, res in self.methods.items():
            entry = {"gamma": res.gamma, "fit_seconds": round(res.fit_seconds, 4),
                     "metric": res.metric, "metrics": res.metrics,
                     "compared_to_none": res.comparison}
            if per_query:
                entry["per_query"] = table(res.per_query, self.test.ids)
            entry.update(res.estimator.describe())
            methods[name] = entry
        out = {"dataset": self.dataset.name, "model": self.dataset.model,
               "n_records": self.dataset.n_records, "dim": self.dataset.dim,
               "splits": {"train": len(self.split.train), "val": len(self.split.val),
                          "test": len(self.split.test)},
               "split": self.split.description, "run_spec": self.spec.to_json(),
               "notes": list(self.dataset.notes), "methods": methods, "seconds": round(self.seconds, 3)}
        if self.serving is not None:
            out["serving"] = self.serving
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


def _share_scan(normalized, estimators, queries: QuerySet) -> None:
    """On a sharded corpus: one pass over the shards for ``queries`` that every method searching
    a view of it with these query vectors answers from (:func:`~nudge_core.outofcore.share_scan`);
    a method that transforms its queries (the adaptor) or holds its own vectors makes its own."""
    if not hasattr(normalized, "scan"):
        return
    from .outofcore import share_scan

    views = [e.index_.vectors for e in estimators
             if getattr(getattr(e, "index_", None), "vectors", None) is not None
             and getattr(e.index_.vectors, "corpus", None) is normalized.corpus]
    share_scan(views, queries.emb, TOP_K)


def run_experiment(dataset: Dataset, split: Split, spec: RunSpec | None = None,
                   ood: QuerySet | None = None, progress: Progress | None = None,
                   backend=None) -> ExperimentResult:
    """Fit every method of ``spec`` on ``split`` and evaluate it on the test (and OOD) queries.

    OOD queries come from ``split.ood`` (k-means protocol) or ``ood`` (a second query set, named
    by ``spec.ood``). ``progress(fraction, message)`` is called as work advances. Every method
    gets the same inputs: the raw records, the training and validation queries, and one shared
    unit-norm copy of the records (read only); methods with ``needs_dataset`` (model fine-tuning)
    also get ``dataset`` for its texts. A sharded corpus (:mod:`nudge_core.shards`) is searched
    shard by shard on ``backend`` (None: this process; a :class:`~nudge_core.dask_backend.
    DaskBackend`: a Dask cluster); results do not depend on the backend.
    """
    spec = spec or RunSpec(dataset.name)
    shown = or_silent(progress)
    stage = [0.0, ""]  # the last report, which a sharded search's per-shard progress extends

    def report(fraction: float, message: str) -> None:
        stage[:] = fraction, message
        shown(fraction, message)
    t0 = time.perf_counter()
    train, val, test = (dataset.queries(ids) for ids in (split.train, split.val, split.test))
    if ood is None and split.ood:
        ood = dataset.queries(split.ood)
    if hasattr(dataset.corpus_emb, "unit_view"):  # sharded: normalised shard by shard as read
        normalized = dataset.corpus_emb.unit_view(backend)
        if progress is not None:
            normalized.on_shard = lambda done, total: shown(
                stage[0], f"{stage[1]}: shard {done} of {total}")
    else:
        report(0.02, "normalising records")
        normalized = normalize_rows(dataset.corpus_emb)
    results: dict[str, MethodResult] = {}
    fitted: dict[str, FineTuner] = {}
    for i, settings in enumerate(spec.methods):
        name = settings.name
        report(0.05 + 0.9 * i / len(spec.methods), f"fitting {name}")
        est = settings.build()
        extra = {}
        if est.needs_dataset:  # model fine-tuning: the texts
            extra["dataset"] = dataset
        if hasattr(est, "progress"):  # slow fits report (and can be cancelled) inside
            lo, hi = 0.05 + 0.9 * i / len(spec.methods), 0.05 + 0.9 * (i + 1) / len(spec.methods)
            est.progress = lambda f, m, lo=lo, hi=hi, name=name: report(lo + (hi - lo) * f,
                                                                        f"{name}: {m}")
        fitted[name] = est.fit(dataset.corpus_emb, train, val, normalized=normalized, **extra)
    report(0.95, "searching the test queries")
    _share_scan(normalized, fitted.values(), test)
    for name, est in fitted.items():
        est.prepare_queries(test)
        top = est.search(test.emb, TOP_K)
        results[name] = MethodResult(name, est, top, evaluate(top, test))
    if ood is not None:
        report(0.955, "searching the OOD queries")
        _share_scan(normalized, fitted.values(), ood)
        for name, est in fitted.items():
            est.prepare_queries(ood)
            res = results[name]
            res.ood_top = est.search(ood.emb, TOP_K)
            res.ood_per_query = evaluate(res.ood_top, ood)
    report(0.96, "comparing with no fine-tuning")
    baseline = results[registry.REFERENCE]
    for name, res in results.items():
        if name == registry.REFERENCE:
            continue
        res.comparison = {m: paired_comparison(baseline.per_query[m], res.per_query[m])
                          for m in COMPARED}
        if ood is not None:
            res.ood_comparison = {m: paired_comparison(baseline.ood_per_query[m], res.ood_per_query[m])
                                  for m in COMPARED}
    for holder in [normalized, *(r.embeddings for r in results.values())]:
        if hasattr(holder, "on_shard"):
            holder.on_shard = None  # this run's progress display is done; later searches are silent
            holder.scan = None  # (n_queries, moved rows) scores: not kept with the result
    report(1.0, "done")
    return ExperimentResult(dataset, split, spec, results, test, ood, time.perf_counter() - t0)
