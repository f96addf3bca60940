"""Does the gain survive serving? Every fitted method of a run, searched through serving indexes.

:func:`evaluate_serving` takes an :class:`~nudge_core.experiment.ExperimentResult` and index
specs (:mod:`.specs`) and, per spec, builds each method's index over the records that method
searches (``estimator.index_``), searches its test (and OOD) queries as the method transforms
them (``transform_queries``), and scores the rankings with :func:`nudge_core.metrics.evaluate`.
Methods that search the same record array (no fine-tuning, the adaptor) share one index.

Gain kept, for the headline metric (``ndcg@10`` unless told): (metric of the method through the
index) − (metric of :data:`registry.REFERENCE` through the same kind of index over its own
records), next to the same difference in exact float32 search (``exact_gain``) and their ratio
(``kept_share``; None when the exact gain is 0).

Methods whose registry metric is "ip" and whose records are not unit norm (NUDGE-M) are evaluated
twice: on the raw records (inner product, as the method is meant to be served: the main entry)
and on re-normalised records (``"renormalized"``: what a cosine index silently does), with
``rankings_differ`` / ``changed_queries`` (share of test queries whose top 10 differ) saying
whether the two rank differently under that index. ``overlap``: share of the method's exact
top 10 (the run's ``test_top``) that the index returns in its top 10 (approximate-search recall).

Timing, on the reference method's index (nothing is asserted on it; the benchmark reports it):
``query_ms`` = median over ``repeats`` searches of the whole test query batch (k = TOP_K) of the
batch's wall time / its number of queries, in milliseconds (amortised per query);
``latency_ms`` = median wall time of one-query searches (k = TOP_K) over the first
``latency_queries`` test queries, in milliseconds. Both run under the faiss thread setting given.

``tune=True`` (the run spec's ``tune_for_index``) adds, for each NUDGE method whose γ was chosen
on validation (not fixed), a ``"tuned"`` entry: its γ chosen on validation through the same index
and the test (and OOD) metrics at that γ against the float32-chosen γ served through the index
(:func:`.tuning.tuned_entry`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from .. import registry
from ..data import QuerySet
from ..experiment import TOP_K, ExperimentResult
from ..metrics import evaluate, mean_metrics
from ..progress import Progress, or_silent
from ..retrieval import normalize_rows, row_norms
from .ann import DEFAULT_THREADS
from .base import FlatIndex, ServingIndex
from .specs import IndexSpec, parse_specs
from .tuning import HEADLINE, tuned_entry

#: Top-k compared when asking whether raw and re-normalised rankings differ.
RANK_CUT = 10
#: Records whose norm is within this of 1 count as unit norm.
UNIT_TOLERANCE = 1e-4


def needs_both_ways(result: ExperimentResult, name: str) -> bool:
    """True when method ``name`` searches by raw inner product ("ip") over records that are not
    all unit norm (NUDGE-M): a cosine index would re-normalise them and rank differently."""
    if registry.get(name).metric != "ip":
        return False
    vectors = result.methods[name].estimator.index_.vectors
    for a in range(0, vectors.shape[0], 65536):
        norms = row_norms(np.asarray(vectors[a:a + 65536], dtype=np.float32))
        if np.any(np.abs(norms - 1) > UNIT_TOLERANCE):
            return True
    return False


def _query_sets(result: ExperimentResult) -> dict[str, QuerySet]:
    sets = {"test": result.test}
    if result.ood is not None:
        sets["ood"] = result.ood
    return sets


def _json_metrics(per_query: dict[str, np.ndarray]) -> dict[str, float]:
    return {k: float(v) for k, v in mean_metrics(per_query).items()}


def _share(kept: float, exact: float) -> float | None:
    return None if exact == 0 else float(kept / exact)


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def time_queries(index: ServingIndex, queries: np.ndarray, repeats: int = 5,
                 latency_queries: int = 50, k: int = TOP_K) -> dict[str, float]:
    """``query_ms`` (batch, amortised per query) and ``latency_ms`` (one query per call), both
    medians in milliseconds (see the module docstring)."""
    if len(queries) == 0:
        return {"query_ms": None, "latency_ms": None}
    batch = _median_ms(lambda: index.search(queries, k), repeats) / len(queries)
    singles = [_median_ms(lambda q=q: index.search(q[None], k), 1)
               for q in queries[:max(1, latency_queries)]]
    return {"query_ms": batch, "latency_ms": float(np.median(singles))}


def overlap(top: np.ndarray, exact_top: np.ndarray, k: int = RANK_CUT) -> float:
    """Mean over queries of |top-k ∩ exact top-k| / k: how much of the exact ranking's head an
    index returns (approximate-search recall@k, relevance ignored)."""
    shares = []
    for a, b in zip(top[:, :k], exact_top[:, :k]):
        want = b[b >= 0]
        if len(want):
            shares.append(len(np.intersect1d(a[a >= 0], want)) / len(want))
    return float(np.mean(shares)) if shares else 1.0


def _rank(index: ServingIndex, estimator, sets: dict[str, QuerySet]) -> dict[str, np.ndarray]:
    return {part: index.search(estimator.transform_queries(qs.emb), TOP_K)[1]
            for part, qs in sets.items()}


def _per_query(tops: dict[str, np.ndarray], sets: dict[str, QuerySet]) -> dict[str, dict]:
    return {part: evaluate(top, sets[part]) for part, top in tops.items()}


def _scores(tops: dict[str, np.ndarray], sets: dict[str, QuerySet]) -> dict[str, dict]:
    return {part: _json_metrics(pq) for part, pq in _per_query(tops, sets).items()}


def tunable(result: ExperimentResult) -> list[str]:
    """The methods ``tune=True`` re-chooses γ for: a registry γ, chosen on validation (the
    estimator's ``gamma`` parameter, a fixed γ, is None)."""
    return [name for name, res in result.methods.items()
            if registry.get(name).gamma is not None and getattr(res.estimator, "gamma", 0) is None]


def _entry(metrics: dict[str, dict], ref: dict[str, dict], exact: dict[str, dict],
           exact_ref: dict[str, dict], metric: str) -> dict:
    """One method's numbers under one spec: test metrics, gains, and the same for OOD."""
    def gains(part: str) -> dict:
        kept = metrics[part][metric] - ref[part][metric]
        full = exact[part][metric] - exact_ref[part][metric]
        return {"metrics": metrics[part], "gain_kept": float(kept), "exact_gain": float(full),
                "kept_share": _share(kept, full)}

    out = gains("test")
    if "ood" in metrics:
        out["ood"] = gains("ood")
    return out


def evaluate_serving(result: ExperimentResult, specs: Sequence[str | IndexSpec], *,
                     metric: str = HEADLINE, threads: int | None = DEFAULT_THREADS,
                     repeats: int = 5, latency_queries: int = 50, time_it: bool = True,
                     tune: bool = False, progress: Progress | None = None) -> dict[str, dict]:
    """``{SPEC: {"spec", "build_seconds", "bytes_per_record", "query_ms", "latency_ms",
    "methods": {METHOD: {"metrics", "gain_kept", "exact_gain", "kept_share", "build_seconds",
    "bytes_per_record", "overlap"[, "ood"][, "renormalized", "rankings_differ",
    "changed_queries"][, "tuned"]}}}}``,
    SPEC as given; plain JSON-able values (see the module docstring).

    Every spec is parsed and checked against the records' (n, d) before any index is built.
    ``threads``: faiss OpenMP threads inside faiss calls; ``time_it=False`` skips the timings;
    ``tune``: add the ``"tuned"`` entries (see the module docstring).
    """
    report = or_silent(progress)
    specs = parse_specs(specs)
    n, d = (int(s) for s in result.methods[registry.REFERENCE].estimator.index_.vectors.shape)
    for spec in specs:
        spec.check(n, d)
    if metric not in result.methods[registry.REFERENCE].metrics:
        raise ValueError(f"metric {metric!r} is not reported; choose from "
                         f"{', '.join(result.methods[registry.REFERENCE].metrics)}")
    sets = _query_sets(result)
    both = {name: needs_both_ways(result, name) for name in result.methods}
    renormed = {name: normalize_rows(result.methods[name].estimator.index_.vectors)
                for name, flag in both.items() if flag}
    exact = {name: {"test": res.metrics, **({"ood": res.ood_metrics} if "ood" in sets else {})}
             for name, res in result.methods.items()}
    exact_renormed = {name: _scores(_rank(FlatIndex(v), result.methods[name].estimator, sets), sets)
                      for name, v in renormed.items()}
    exact_ref = exact[registry.REFERENCE]
    tuned = tunable(result) if tune else []
    out: dict[str, dict] = {}
    for i, spec in enumerate(specs):
        report(i / len(specs), f"index {spec.text}")
        built: dict[int, ServingIndex] = {}  # id(records) -> index: methods sharing records share it

        def index_for(vectors: np.ndarray) -> ServingIndex:
            if id(vectors) not in built:
                built[id(vectors)] = spec.build(vectors, threads=threads)
            return built[id(vectors)]

        ranked = {name: _rank(index_for(res.estimator.index_.vectors), res.estimator, sets)
                  for name, res in result.methods.items()}
        per_query = {name: _per_query(tops, sets) for name, tops in ranked.items()}
        metrics = {name: {part: _json_metrics(pq) for part, pq in parts.items()}
                   for name, parts in per_query.items()}
        ref_metrics = metrics[registry.REFERENCE]
        ref_index = index_for(result.methods[registry.REFERENCE].estimator.index_.vectors)
        entry = {"spec": spec.canonical, "build_seconds": float(ref_index.build_seconds),
                 "bytes_per_record": float(ref_index.bytes_per_record)}
        if time_it:
            entry.update(time_queries(ref_index, result.methods[registry.REFERENCE].estimator
                                      .transform_queries(result.test.emb), repeats, latency_queries))
        methods = {}
        for name, res in result.methods.items():
            index = index_for(res.estimator.index_.vectors)
            m = _entry(metrics[name], ref_metrics, exact[name], exact_ref, metric)
            m.update(build_seconds=float(index.build_seconds),
                     bytes_per_record=float(index.bytes_per_record),
                     overlap=overlap(ranked[name]["test"], res.test_top))
            if both[name]:
                tops = _rank(index_for(renormed[name]), res.estimator, sets)
                m["renormalized"] = _entry(_scores(tops, sets), ref_metrics, exact_renormed[name],
                                           exact_ref, metric)
                changed = np.any(tops["test"][:, :RANK_CUT] != ranked[name]["test"][:, :RANK_CUT],
                                 axis=1)
                m["changed_queries"] = float(changed.mean()) if len(changed) else 0.0
                m["rankings_differ"] = bool(changed.any())
            if name in tuned:
                report((i + 0.5) / len(specs), f"index {spec.text}: choosing {name}'s γ through it")
                m["tuned"] = tuned_entry(result, name, spec, per_query[name], ref_metrics,
                                         metric=metric, threads=threads)
            methods[name] = m
        entry["methods"] = methods
        out[spec.text] = entry
        built.clear()
    report(1.0, "done")
    return out
