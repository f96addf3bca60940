"""Paired comparison of a metric before and after fine-tuning, over the same queries.

Uses scipy: a paired percentile bootstrap for the confidence interval of the mean difference
(Efron & Tibshirani 1993) and a paired randomization (sign-flip) test for its p-value
(Smucker, Allan & Carterette 2007 recommend it for IR).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

#: Per-query changes within this of zero count as ties (floating-point noise, not a change).
TIE_TOLERANCE = 1e-9


def paired_comparison(before: np.ndarray, after: np.ndarray, *, n_resamples: int = 2000,
                      confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Compare per-query values ``after`` vs ``before`` ((n,) arrays, same query order).

    Returns ``before``, ``after`` (means), ``delta`` (mean of after - before), ``ci_low``/
    ``ci_high`` (bootstrap interval of delta), ``p_value`` (two-sided randomization test of
    delta = 0) and ``wins``/``losses``/``ties`` (queries where after >, <, = before, within
    :data:`TIE_TOLERANCE`).
    """
    before = np.asarray(before, dtype=np.float64)
    after = np.asarray(after, dtype=np.float64)
    if before.shape != after.shape or before.ndim != 1:
        raise ValueError(f"before and after must be 1-D arrays of one shape, got {before.shape} "
                         f"and {after.shape}")
    diff = after - before
    out = {"before": float(before.mean()), "after": float(after.mean()),
           "delta": float(diff.mean()),
           "wins": int((diff > TIE_TOLERANCE).sum()), "losses": int((diff < -TIE_TOLERANCE).sum()),
           "ties": int((np.abs(diff) <= TIE_TOLERANCE).sum()), "n": int(len(diff))}
    if len(diff) < 2 or np.allclose(diff, diff[0]):
        out.update(ci_low=float(diff.mean()), ci_high=float(diff.mean()),
                   p_value=1.0 if np.allclose(diff, 0) else float("nan"))
        return out
    rng = np.random.default_rng(seed)
    boot = stats.bootstrap((diff,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                           method="percentile", random_state=rng, vectorized=True)
    perm = stats.permutation_test((before, after), lambda x, y, axis: np.mean(y - x, axis=axis),
                                  permutation_type="samples", n_resamples=n_resamples,
                                  vectorized=True, random_state=rng)
    out.update(ci_low=float(boot.confidence_interval.low), ci_high=float(boot.confidence_interval.high),
               p_value=float(perm.pvalue))
    return out
