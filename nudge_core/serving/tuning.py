"""Fine-tune for the index you serve: NUDGE's γ chosen on validation *through* a serving index.

A fitted NUDGE estimator knows its records at every γ (``path_.embed(γ)`` for the active rows,
every other row unchanged in ``index_``). :func:`validation_curve` builds the given index over
the records at each γ and evaluates the method's own validation objective through it (NUDGE-M:
hit@1; NUDGE-N: recall@val_k, as :mod:`nudge_core.nudge` defines them). :func:`gamma_under_index`
picks the best γ of that curve and compares, on the test queries through the same index, the
γ chosen this way with the γ chosen in float32 (the estimator's ``gamma_``).

Each γ costs one index build over all records (the index is rebuilt, not updated, so trained
quantizers, calibration ranges and graphs match the records that would be deployed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data import QuerySet
from ..experiment import TOP_K, ExperimentResult
from ..metrics import evaluate, hit_at_1, mean_metrics, recall_at_k
from .ann import DEFAULT_THREADS
from .evaluate import HEADLINE
from .specs import IndexSpec

#: Log-spaced NUDGE-M γ values tried by default besides 0 and the fitted γ.
M_GRID_POINTS = 16


def default_gammas(estimator) -> np.ndarray:
    """Sorted γ values: NUDGE-N its searched grid; NUDGE-M 0 and a log grid up to the bounds'
    ``sweep_high``; both plus the fitted γ."""
    if estimator.path_.unit_norm:
        grid = np.asarray(estimator.curve_gammas_, dtype=np.float64)
    else:
        high = estimator.bounds.sweep_high
        grid = np.concatenate([[0.0], np.geomspace(high / 1000, high, M_GRID_POINTS)])
    return np.unique(np.concatenate([grid, [float(estimator.gamma_)]]))


def records_at(estimator, gamma: float, out: np.ndarray | None = None) -> np.ndarray:
    """(n, d) float32 records the fitted NUDGE ``estimator`` would search at ``gamma``: its
    ``index_`` vectors with the active rows set to ``path_.embed(gamma)`` (written into ``out``
    when given, else a copy)."""
    if out is None:
        out = np.array(estimator.index_.vectors, dtype=np.float32)
    out[estimator.active_.rows] = estimator.path_.embed(gamma)
    return out


def objective(estimator, top_rows: np.ndarray, val: QuerySet) -> float:
    """The estimator's validation objective of rows ranked best first: NUDGE-M hit@1, NUDGE-N
    recall@val_k (denominator min(|R|, val_k))."""
    gains = val.relevance.gains(top_rows)
    if not estimator.path_.unit_norm:
        return float(hit_at_1(gains).mean())
    return float(recall_at_k(gains, val.relevance.n_relevant, int(estimator.val_k)).mean())


def validation_curve(estimator, val: QuerySet, spec: str | IndexSpec,
                     gammas: Sequence[float] | None = None, *,
                     threads: int | None = DEFAULT_THREADS) -> tuple[np.ndarray, np.ndarray]:
    """(gammas, objectives), each (n_gammas,) float64: the validation objective of a fitted NUDGE
    estimator with its records at each γ, searched through ``spec``'s index."""
    if not hasattr(estimator, "path_"):
        raise ValueError("validation_curve needs a fitted NUDGE estimator (one with path_)")
    spec = IndexSpec.parse(spec)
    spec.check(*estimator.index_.vectors.shape)
    gammas = default_gammas(estimator) if gammas is None else np.asarray(gammas, dtype=np.float64)
    k = 1 if not estimator.path_.unit_norm else int(estimator.val_k)
    work = np.array(estimator.index_.vectors, dtype=np.float32)
    queries = estimator.transform_queries(val.emb)
    values = []
    for g in gammas:
        index = spec.build(records_at(estimator, float(g), out=work), threads=threads)
        values.append(objective(estimator, index.search(queries, k)[1], val))
    return gammas, np.array(values)


def gamma_under_index(result: ExperimentResult, method: str, spec: str | IndexSpec,
                      gammas: Sequence[float] | None = None, *, metric: str = HEADLINE,
                      threads: int | None = DEFAULT_THREADS) -> dict:
    """Choose ``method``'s γ on validation through ``spec``'s index and compare with its float32 γ.

    Returns ``{"spec", "method", "gammas", "objective" (validation, through the index),
    "gamma_float", "gamma_index" (first best of the curve, i.e. the smallest), "test":
    {"gamma_float": metrics, "gamma_index": metrics} (through the index), "gain"
    (metric at gamma_index − at gamma_float)}``: whether tuning for the served index helps.
    """
    est = result.methods[method].estimator
    spec = IndexSpec.parse(spec)
    val = result.dataset.queries(result.split.val)
    grid, values = validation_curve(est, val, spec, gammas, threads=threads)
    chosen = float(grid[int(np.argmax(np.round(values, 12)))])
    work = np.array(est.index_.vectors, dtype=np.float32)
    test = {}
    for key, g in (("gamma_float", float(est.gamma_)), ("gamma_index", chosen)):
        index = spec.build(records_at(est, g, out=work), threads=threads)
        top = index.search(est.transform_queries(result.test.emb), TOP_K)[1]
        test[key] = {m: float(v) for m, v in mean_metrics(evaluate(top, result.test)).items()}
    return {"spec": spec.text, "method": method, "gammas": grid.tolist(),
            "objective": values.tolist(), "gamma_float": float(est.gamma_),
            "gamma_index": chosen, "test": test,
            "gain": test["gamma_index"][metric] - test["gamma_float"][metric]}
