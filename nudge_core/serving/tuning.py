"""Fine-tune for the index you serve: NUDGE's γ chosen on validation *through* a serving index.

A fitted NUDGE estimator knows its records at every γ (``path_.embed(γ)`` for the active rows,
every other row unchanged in ``index_``). :func:`validation_curve` builds the given index over
the records at each candidate γ (:func:`default_gammas`) and evaluates the estimator's own
validation objective through it (its ``objective``; by default NUDGE-M hit@1, NUDGE-N
recall@val_k, as :mod:`nudge_core.nudge` defines them). :func:`choose_gamma` keeps the float32
γ unless another candidate is strictly better through the index (so through ``exact`` the
choice is the float32 one), else takes the smallest best. :func:`gamma_under_index` and
:func:`tuned_entry` (the ``"tuned"`` entry of :func:`~nudge_core.serving.evaluate_serving`)
compare, on the test (and OOD) queries through the same index, the γ chosen this way with the
γ chosen in float32 (the estimator's ``gamma_``) and compressed afterwards, with the paired
comparison every other before/after difference gets (:mod:`nudge_core.significance`).

Each γ costs one index build over all records (the index is rebuilt, not updated, so trained
quantizers, calibration ranges and graphs match the records that would be deployed). NUDGE-M is
tuned on its raw records (inner product, as it is meant to be served), not re-normalised ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..data import QuerySet
from ..exact_path import parse_objective
from ..experiment import COMPARED, TOP_K, ExperimentResult
from ..metrics import evaluate, mean_metrics, objective_values
from ..significance import paired_comparison
from .ann import DEFAULT_THREADS
from .specs import IndexSpec

#: Metric whose gain is reported unless the caller picks another (:mod:`.evaluate` uses it too).
HEADLINE = "ndcg@10"
#: Log-spaced γ values tried after an exact float32 search (besides the interval's low end and
#: the fitted γ).
M_GRID_POINTS = 16
#: Validation objectives are compared after rounding to this many decimals (as the estimators do).
DECIMALS = 12


def default_gammas(estimator) -> np.ndarray:
    """Sorted (n_gammas,) float64 candidate γ values, always including the fitted γ.

    When the float32 search tried a grid (``gammas`` given, or NUDGE-N's default grid), the
    same grid: both choices then pick from the same candidates. After an exact search over an
    interval [low, high] (NUDGE-M's default, ``exact``, ``gamma_bounds``): low and
    :data:`M_GRID_POINTS` log-spaced values up to high (capped at the bounds' ``sweep_high``
    when that stays above low): an exact curve's breakpoints are too many to build an index for
    each."""
    if estimator.gammas is not None:
        grid = np.asarray(estimator.gammas, dtype=np.float64)
    elif not estimator._exact():
        grid = np.asarray(estimator.curve_gammas_, dtype=np.float64)
    else:
        low, high = estimator._interval()
        if min(high, estimator.bounds.sweep_high) > low:
            high = min(high, estimator.bounds.sweep_high)
        grid = np.concatenate([[low], np.geomspace(max(low, high / 1000), high,
                                                   M_GRID_POINTS)])
    return np.unique(np.concatenate([grid, [float(estimator.gamma_)]]))


def records_at(estimator, gamma: float, out: np.ndarray | None = None) -> np.ndarray:
    """(n, d) float32 records the fitted NUDGE ``estimator`` would search at ``gamma``: its
    ``index_`` vectors with the active rows set to ``path_.embed(gamma)`` (written into ``out``
    when given, else a copy)."""
    if out is None:
        out = np.array(estimator.index_.vectors, dtype=np.float32)
    out[estimator.active_.rows] = estimator.path_.embed(gamma)
    return out


def objective_name(estimator) -> str:
    """The validation objective the estimator chose its γ by (``"hit@1"``, ``"recall@10"``, ...)."""
    return estimator._objective()


def objective(estimator, top_rows: np.ndarray, val: QuerySet) -> float:
    """Mean over ``val``'s queries of the estimator's validation objective for rows ranked best
    first ((n_val, k) int, k at least the objective's cut-off or the number of records)."""
    family, k = parse_objective(objective_name(estimator))
    return float(objective_values(top_rows, val.relevance, family, k).mean())


def validation_curve(estimator, val: QuerySet, spec: str | IndexSpec,
                     gammas: Sequence[float] | None = None, *,
                     threads: int | None = DEFAULT_THREADS) -> tuple[np.ndarray, np.ndarray]:
    """(gammas, objectives), each (n_gammas,) float64: the validation objective of a fitted NUDGE
    estimator with its records at each γ (default :func:`default_gammas`), searched through
    ``spec``'s index."""
    if not hasattr(estimator, "path_"):
        raise ValueError("validation_curve needs a fitted NUDGE estimator (one with path_)")
    spec = IndexSpec.parse(spec)
    n = estimator.index_.vectors.shape[0]
    spec.check(*estimator.index_.vectors.shape)
    gammas = default_gammas(estimator) if gammas is None else np.asarray(gammas, dtype=np.float64)
    k = min(parse_objective(objective_name(estimator))[1], n)
    work = np.array(estimator.index_.vectors, dtype=np.float32)
    queries = estimator.transform_queries(val.emb)
    values = []
    for g in gammas:
        index = spec.build(records_at(estimator, float(g), out=work), threads=threads)
        values.append(objective(estimator, index.search(queries, k)[1], val))
    return gammas, np.array(values)


def choose_gamma(gammas: np.ndarray, values: np.ndarray, gamma_float: float) -> float:
    """The γ of a validation curve through an index: ``gamma_float`` when it is among ``gammas``
    and reaches the best value (after rounding to :data:`DECIMALS`), else the first best (the
    smallest, for a sorted grid). So a different γ is chosen only when it is strictly better
    through the index."""
    rounded = np.round(np.asarray(values, dtype=np.float64), DECIMALS)
    at_float = rounded[np.asarray(gammas) == gamma_float]
    if at_float.size and at_float[0] == rounded.max():
        return float(gamma_float)
    return float(gammas[int(np.argmax(rounded))])


def _compare(before: np.ndarray, after: np.ndarray) -> dict:
    """:func:`paired_comparison` with a non-finite value (the p-value of a single query that
    changed) written None, so the entry stays plain JSON."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in paired_comparison(before, after).items()}


def _per_query(estimator, spec: IndexSpec, gamma: float, sets: dict[str, QuerySet],
               threads: int | None) -> dict[str, dict[str, np.ndarray]]:
    """{part: per-query metrics} of the estimator's records at ``gamma`` through ``spec``."""
    index = spec.build(records_at(estimator, gamma), threads=threads)
    return {part: evaluate(index.search(estimator.transform_queries(qs.emb), TOP_K)[1], qs)
            for part, qs in sets.items()}


def tuned_entry(result: ExperimentResult, method: str, spec: str | IndexSpec,
                float_per_query: dict[str, dict[str, np.ndarray]],
                reference: dict[str, dict[str, float]], *, metric: str = HEADLINE,
                gammas: Sequence[float] | None = None,
                threads: int | None = DEFAULT_THREADS) -> dict:
    """``method``'s γ chosen through ``spec``'s index, against its float32 γ served through it.

    ``float_per_query``: {part: per-query metrics} of the float32-chosen records through this
    index (part "test", and "ood" when the run has OOD queries); ``reference``: {part: mean
    metrics} of the reference method through it (for ``gain_kept``). Returns plain JSON:
    ``{"objective" (its name), "gamma_float", "gamma_index", "changed", "validation":
    {"gamma_float", "gamma_index"} (the objective through the index), "curve": {"gammas",
    "values"}, "metrics" (test, at gamma_index), "gain_kept" (minus the reference, same index),
    "delta" (``metric`` at gamma_index − at gamma_float), "vs_float": {metric: paired
    comparison, before = gamma_float, after = gamma_index}[, "ood": {"metrics", "gain_kept",
    "delta", "vs_float"}]}``."""
    est = result.methods[method].estimator
    spec = IndexSpec.parse(spec)
    val = result.dataset.queries(result.split.val)
    grid, values = validation_curve(est, val, spec, gammas, threads=threads)
    g_float = float(est.gamma_)
    chosen = choose_gamma(grid, values, g_float)
    sets = {"test": result.test, **({"ood": result.ood} if "ood" in float_per_query else {})}
    per_query = (float_per_query if chosen == g_float
                 else _per_query(est, spec, chosen, sets, threads))

    def part_entry(part: str) -> dict:
        means = {m: float(v) for m, v in mean_metrics(per_query[part]).items()}
        before = float_per_query[part]
        return {"metrics": means, "gain_kept": means[metric] - reference[part][metric],
                "delta": means[metric] - float(np.mean(before[metric])),
                "vs_float": {m: _compare(before[m], per_query[part][m])
                             for m in dict.fromkeys((metric, *COMPARED))}}

    def value_at(g: float) -> float | None:
        hit = values[grid == g]
        return float(hit[0]) if hit.size else None
    out = {"objective": objective_name(est), "gamma_float": g_float, "gamma_index": chosen,
           "changed": chosen != g_float,
           "validation": {"gamma_float": value_at(g_float), "gamma_index": value_at(chosen)},
           "curve": {"gammas": grid.tolist(), "values": values.tolist()}, **part_entry("test")}
    if "ood" in per_query:
        out["ood"] = part_entry("ood")
    return out


def gamma_under_index(result: ExperimentResult, method: str, spec: str | IndexSpec,
                      gammas: Sequence[float] | None = None, *, metric: str = HEADLINE,
                      threads: int | None = DEFAULT_THREADS) -> dict:
    """Choose ``method``'s γ on validation through ``spec``'s index and compare with its float32 γ.

    Returns ``{"spec", "method", "gammas", "objective" (validation, through the index),
    "gamma_float", "gamma_index" (:func:`choose_gamma`), "test": {"gamma_float": metrics,
    "gamma_index": metrics} (through the index), "gain" (metric at gamma_index − at
    gamma_float)}``: whether tuning for the served index helps.
    """
    est = result.methods[method].estimator
    spec = IndexSpec.parse(spec)
    val = result.dataset.queries(result.split.val)
    grid, values = validation_curve(est, val, spec, gammas, threads=threads)
    chosen = choose_gamma(grid, values, float(est.gamma_))
    test = {key: mean_metrics(_per_query(est, spec, g, {"test": result.test}, threads)["test"])
            for key, g in (("gamma_float", float(est.gamma_)), ("gamma_index", chosen))}
    test = {key: {m: float(v) for m, v in ms.items()} for key, ms in test.items()}
    return {"spec": spec.text, "method": method, "gammas": grid.tolist(),
            "objective": values.tolist(), "gamma_float": float(est.gamma_),
            "gamma_index": chosen, "test": test,
            "gain": test["gamma_index"][metric] - test["gamma_float"][metric]}
