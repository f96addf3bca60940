"""NUDGE at many γ without refitting: the app's γ slider and the sensitivity sweep.

Both rest on :meth:`NudgeM.scorer` / :meth:`NudgeN.scorer`: a fitted estimator's
:class:`~nudge_core.gamma_path.GammaScorer` gives the exact top-k of a query set at any γ from
per-query dot products computed once, so a new γ costs one elementwise pass over the active records
plus a metric evaluation.

* :class:`GammaRescorer` keeps the scorers of one fitted estimator for named query sets (test, OOD)
  and returns metrics at any γ — the γ slider.
* :func:`sensitivity_sweep` fits each method once per split (at a fixed γ, skipping the search) and
  evaluates train / validation / test / OOD NDCG@10 over a log-spaced γ grid — the sensitivity page;
  with the run's own γ setting it also records, per split, the chosen γ and that fit's test / OOD
  metrics against no fine-tuning (the page's seed-by-seed table).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import registry
from .data import Dataset, QuerySet
from .metrics import KS, evaluate, mean_metrics
from .progress import Progress, or_silent
from .retrieval import normalize_rows
from .runspec import MethodSettings, RunSpec
from .splits import Split

PARTS = ("train", "val", "test", "ood")
#: Metrics kept per split seed for the fit at the chosen γ (the per-seed table).
CHOSEN_METRICS = ("ndcg@10", "recall@10", "mrr@10")


def log_grid(method: str, n: int = 25, low: float = 1e-3) -> np.ndarray:
    """Log-spaced γ values from ``low`` to the method's ``sweep_high`` (registry: 10 for NUDGE-M,
    4 for NUDGE-N, where γ <= 4 on the sphere)."""
    high = registry.get(method).gamma.sweep_high
    return np.logspace(np.log10(low), np.log10(high), int(n))


class GammaRescorer:
    """Metrics of a fitted NUDGE estimator at any γ, for named query sets, without refitting.

    ``queries`` maps a name (``"test"``, ``"ood"``) to a QuerySet. Building costs one exact search
    per set over the records that never move; :meth:`per_query` then costs milliseconds at SciFact
    size.
    """

    def __init__(self, estimator, queries: dict[str, QuerySet], k: int = max(KS)):
        self.estimator = estimator
        self.queries = {name: qs for name, qs in queries.items() if qs is not None and len(qs)}
        self.k = min(int(k), estimator.embeddings_.shape[0])
        self.scorers = {name: estimator.scorer(qs.emb, self.k) for name, qs in self.queries.items()}

    def top_rows(self, gamma: float, part: str = "test") -> np.ndarray:
        """(n_queries, k) record rows ranked at ``gamma``, best first."""
        return self.scorers[part].topk(float(gamma), self.k)

    def per_query(self, gamma: float, part: str = "test") -> dict[str, np.ndarray]:
        return evaluate(self.top_rows(gamma, part), self.queries[part])

    def metrics(self, gamma: float, part: str = "test") -> dict[str, float]:
        return mean_metrics(self.per_query(gamma, part))

    def curve(self, gammas, metric: str = "ndcg@10", part: str = "test") -> np.ndarray:
        """``metric`` at each γ of ``gammas`` (for drawing it along the γ axis)."""
        return np.array([self.metrics(float(g), part)[metric] for g in gammas])

    def timed_metrics(self, gamma: float, part: str = "test") -> tuple[dict[str, float], float]:
        """(metrics, seconds taken) — the app shows how long a re-score took."""
        t0 = time.perf_counter()
        out = self.metrics(gamma, part)
        return out, time.perf_counter() - t0


@dataclass
class SweepResult:
    """NDCG@k (or another metric) per method, part and split seed over a γ grid.

    ``values[method][part]`` is (n_splits, n_gammas); parts without queries are absent.
    """

    metric: str
    gammas: dict[str, np.ndarray]
    values: dict[str, dict[str, np.ndarray]]
    chosen: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    #: ``chosen_metrics[method][i][part]``: the :data:`CHOSEN_METRICS` of split ``i``'s fit with
    #: the spec's own γ setting (``chosen[method][i]``) on its "test" / "ood" queries, and under
    #: ``"<part> before"`` the same at γ = 0 (no record moved: no fine-tuning)
    chosen_metrics: dict[str, list[dict[str, dict[str, float]]]] = field(default_factory=dict)

    def mean(self, method: str, part: str) -> np.ndarray:
        return self.values[method][part].mean(axis=0)

    def band(self, method: str, part: str) -> tuple[np.ndarray, np.ndarray]:
        """(low, high): min and max over split seeds at each γ."""
        v = self.values[method][part]
        return v.min(axis=0), v.max(axis=0)

    def markers(self, method: str) -> dict[str, float | None]:
        """Where gains stop and overfitting begins, read off the mean curves.

        ``val_peak``: the smallest γ with the best validation score (what a γ search picks);
        ``test_peak``: the smallest γ with the best test score; ``overfit``: the first γ after the
        test peak at which test has fallen more than 0.01 below its peak while train is at least as
        high as at the peak (gains on training queries no longer carry over), or None.
        """
        g = self.gammas[method]
        parts = self.values[method]
        out: dict[str, float | None] = {"val_peak": None, "test_peak": None, "overfit": None}
        if "val" in parts:
            out["val_peak"] = float(g[int(np.argmax(np.round(self.mean(method, "val"), 12)))])
        if "test" in parts:
            test = self.mean(method, "test")
            peak = int(np.argmax(np.round(test, 12)))
            out["test_peak"] = float(g[peak])
            train = self.mean(method, "train") if "train" in parts else None
            for i in range(peak + 1, len(g)):
                if test[i] < test[peak] - 0.01 and (train is None or train[i] >= train[peak] - 1e-12):
                    out["overfit"] = float(g[i])
                    break
        return out

    def to_json(self) -> dict:
        return {"metric": self.metric, "seconds": round(self.seconds, 3),
                "methods": {m: {"gammas": self.gammas[m].tolist(),
                                "chosen_gamma": self.chosen.get(m, []),
                                "markers": self.markers(m),
                                "chosen_metrics": self.chosen_metrics.get(m, []),
                                **{p: v.tolist() for p, v in self.values[m].items()}}
                            for m in self.values}}


def sensitivity_sweep(dataset: Dataset, splits: Sequence[Split], spec: RunSpec, *,
                      ood: QuerySet | None = None, grids: dict[str, np.ndarray] | None = None,
                      metric: str = "ndcg@10", with_chosen: bool = True,
                      progress: Progress | None = None) -> SweepResult:
    """Evaluate ``metric`` on train/val/test/OOD queries over a γ grid for each γ method of
    ``spec`` and each split.

    One fit per (method, split) at a fixed γ (the search is skipped; the scorer re-ranks at any γ),
    with the spec's other settings. OOD queries are ``split.ood`` (k-means protocol) when present,
    else ``ood``. With ``with_chosen`` each method is also fitted with the spec's own γ setting
    (automatic, fixed, range or grid) and the γ it ends with is reported in ``chosen[method]``
    (one per split).
    """
    report = or_silent(progress)
    t0 = time.perf_counter()
    methods = [m for m in spec.methods if registry.get(m.name).gamma is not None]
    if not methods:
        raise ValueError(f"the run spec must include a method with a γ: {', '.join(registry.gamma_methods())}")
    if not splits:
        raise ValueError("give at least one split")
    grids = {m.name: np.asarray((grids or {}).get(m.name, log_grid(m.name)), dtype=np.float64)
             for m in methods}
    values: dict[str, dict[str, list[np.ndarray]]] = {m.name: {} for m in methods}
    chosen: dict[str, list[float]] = {m.name: [] for m in methods}
    chosen_metrics: dict[str, list[dict]] = {m.name: [] for m in methods}
    total = len(methods) * len(splits)
    # normalised once, shared (read only) by every fit; a sharded corpus as each shard is read
    corpus = dataset.corpus_emb
    normalized = corpus.unit_view() if hasattr(corpus, "unit_view") else normalize_rows(corpus)
    step = 0
    for split in splits:
        sets = {"train": dataset.queries(split.train), "val": dataset.queries(split.val),
                "test": dataset.queries(split.test)}
        extra = dataset.queries(split.ood) if split.ood else ood
        if extra is not None and len(extra):
            sets["ood"] = extra
        for settings in methods:
            name = settings.name
            report(step / total, f"{name}: fitting and scoring ({split.description or 'split'})")
            at = MethodSettings(name, float(grids[name][0]), settings.params)
            est = at.build().fit(dataset.corpus_emb, sets["train"], sets["val"], normalized=normalized)
            rescorer = GammaRescorer(est, sets)
            for part in sets:
                curve = np.array([rescorer.metrics(g, part)[metric] for g in grids[name]])
                values[name].setdefault(part, []).append(curve)
            if with_chosen:
                searched = settings.build().fit(dataset.corpus_emb, sets["train"], sets["val"],
                                                normalized=normalized)
                chosen[name].append(float(searched.gamma_))
                kept = {}
                for part in ("test", "ood"):
                    if part in sets:
                        top = searched.search(sets[part].emb, max(KS))
                        after = mean_metrics(evaluate(top, sets[part]))
                        before = rescorer.metrics(0.0, part)  # γ = 0: nothing moved
                        kept[part] = {m: after[m] for m in CHOSEN_METRICS}
                        kept[f"{part} before"] = {m: before[m] for m in CHOSEN_METRICS}
                chosen_metrics[name].append(kept)
            step += 1
    report(1.0, "done")
    return SweepResult(metric, grids, {m: {p: np.vstack(v) for p, v in parts.items()}
                                       for m, parts in values.items()},
                       chosen if with_chosen else {}, time.perf_counter() - t0,
                       chosen_metrics if with_chosen else {})
