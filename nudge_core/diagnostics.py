"""Say when a result is bad: plain-worded flags about one run (and, optionally, its γ sweep).

A run can look fine and still mislead: the automatically chosen γ may *lower* test quality, sit at
the edge of the γ values the search was allowed to try, sit far from where the sensitivity sweep's
test curve peaks, or a "gain" may be within the noise. :func:`diagnose` reads those cases off the
numbers an :class:`~nudge_core.experiment.ExperimentResult` (and a
:class:`~nudge_core.sensitivity.SweepResult`) already hold; nothing is refitted or re-searched.
Each :class:`Flag` carries the numbers in its message, so the app and a notebook can show it as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import registry
from .experiment import COMPARED, ExperimentResult

#: Flag kinds, in the order they are reported.
WORSE = "worse"          # the method does worse than no fine-tuning (test or OOD queries)
EDGE = "edge"            # the chosen γ is at an end of the searched range or grid
OFF_PEAK = "off-peak"    # the chosen γ is far from where the sweep's test curve peaks
UNSURE = "unsure"        # a gain whose 95% interval includes zero
KINDS = (WORSE, EDGE, OFF_PEAK, UNSURE)
#: Severities: "warning" (the result is probably not what you want), "info" (read with care).
SEVERITIES = ("warning", "info")

PART_WORDS = {"test": "test queries", "ood": "out-of-distribution (OOD) queries"}


@dataclass(frozen=True)
class Flag:
    """One finding about one method: ``kind`` (one of :data:`KINDS`), ``severity`` ("warning" or
    "info"), ``message`` (plain words with the numbers), ``part`` ("test" / "ood" where the finding
    is about one query set, else None)."""

    method: str
    kind: str
    severity: str
    message: str
    part: str | None = None


def searched_range(estimator) -> tuple[str, float, float] | None:
    """(``"grid"`` or ``"range"``, lowest γ, highest γ) that a fitted NUDGE estimator searched, or
    None when γ was fixed by the user or the method has no γ.

    Read from the estimator's settings and fitted state (:mod:`nudge_core.nudge`): a grid
    (``gammas``, or NUDGE-N's default grid, whose values are ``curve_gammas_``), an exact step
    curve over ``curve_.lo`` .. ``curve_.hi``, or NUDGE-M's interval sweep over its whole allowed
    range (``bounds``)."""
    if getattr(estimator, "gamma_", None) is None or getattr(estimator, "gamma", None) is not None:
        return None
    gammas = getattr(estimator, "gammas", None)
    if gammas is not None:
        grid = np.asarray(gammas, dtype=np.float64)
        return "grid", float(grid.min()), float(grid.max())
    curve = getattr(estimator, "curve_", None)
    if curve is not None:
        return "range", float(curve.lo), float(curve.hi)
    exact = estimator.exact if getattr(estimator, "exact", None) is not None \
        else getattr(estimator, "exact_by_default", True)
    if not exact and getattr(estimator, "curve_gammas_", None) is not None:
        # searched on the method's default grid: curve_gammas_ is that grid
        grid = np.asarray(estimator.curve_gammas_, dtype=np.float64)
        return "grid", float(grid.min()), float(grid.max())
    bounds = getattr(estimator, "bounds", None)  # NUDGE-M's interval sweep: its whole range
    return None if bounds is None else ("range", float(bounds.low), float(bounds.high))


def _interval(c: dict) -> str:
    """"−0.052, 95% interval −0.120 to +0.020, p = 0.175"."""
    p = c.get("p_value", float("nan"))
    p_text = "p not defined" if not np.isfinite(p) else f"p = {p:.3g}"
    return f"{c['delta']:+.3f}; 95% interval {c['ci_low']:+.3f} to {c['ci_high']:+.3f}, {p_text}"


def _who(result: ExperimentResult, method: str) -> str:
    gamma = result.methods[method].gamma
    return registry.label(method) + ("" if gamma is None else f" (γ = {gamma:.4g})")


def _quality_flags(result: ExperimentResult, method: str, metrics, alpha: float) -> list[Flag]:
    res = result.methods[method]
    flags = []
    for part, comp in (("test", res.comparison), ("ood", res.ood_comparison)):
        present = [m for m in metrics if m in (comp or {})]
        worse = [m for m in present if comp[m]["delta"] < -1e-12]
        if worse:
            parts = []
            for m in worse:
                c = comp[m]
                sure = np.isfinite(c["p_value"]) and c["p_value"] < alpha and c["ci_high"] < 0
                parts.append(f"{m} {c['before']:.3f} → {c['after']:.3f} ({_interval(c)}"
                             + (", a real loss)" if sure else ", possibly chance)"))
            flags.append(Flag(method, WORSE, "warning",
                              f"{_who(result, method)} does worse than no fine-tuning on the "
                              f"{PART_WORDS[part]}: " + "; ".join(parts) + ".", part))
        unsure = [m for m in present if comp[m]["delta"] > 1e-12 and comp[m]["ci_low"] <= 0]
        if unsure:
            parts = [f"{m} {_interval(comp[m])}" for m in unsure]
            flags.append(Flag(method, UNSURE, "info",
                              f"The gain of {_who(result, method)} on the {PART_WORDS[part]} "
                              "is not clear of zero: " + "; ".join(parts) + ". It may be chance; more "
                              "test queries or other split seeds would tell.", part))
    return flags


def _edge_flag(result: ExperimentResult, method: str) -> Flag | None:
    res = result.methods[method]
    searched = searched_range(res.estimator)
    if searched is None:
        return None
    kind, lo, hi = searched
    gamma = float(res.gamma)
    tol = 1e-9 * max(1.0, abs(hi))
    what = f"the {kind} searched, [{lo:.4g}, {hi:.4g}]"
    label = registry.label(method)
    if hi > lo and gamma >= hi - tol:
        return Flag(method, EDGE, "warning",
                    f"{label}'s chosen γ = {gamma:.4g} is the largest value of {what}: the "
                    "validation objective was still best at the edge, so a larger γ might do "
                    "better (or the method is overfitting). Widen the range, or look at the "
                    "Sensitivity page.")
    if gamma <= lo + tol:
        if lo <= 0:
            return Flag(method, EDGE, "info",
                        f"{label} chose γ = {gamma:.4g}, the smallest value of {what}: no larger γ "
                        "improved the validation objective, so no record was moved and the "
                        "result equals no fine-tuning.")
        return Flag(method, EDGE, "warning",
                    f"{label}'s chosen γ = {gamma:.4g} is the smallest value of {what}: a smaller "
                    "γ might do better. Widen the range down towards 0.")
    return None


def _peak_flag(result: ExperimentResult, method: str, sweep, factor: float, drop: float) -> Flag | None:
    if sweep is None or method not in getattr(sweep, "values", {}) or "test" not in sweep.values[method]:
        return None
    gamma = result.methods[method].gamma
    if gamma is None:
        return None
    grid = np.asarray(sweep.gammas[method], dtype=np.float64)
    test = sweep.mean(method, "test")
    peak_gamma = sweep.markers(method)["test_peak"]
    peak = float(test[int(np.argmin(np.abs(grid - peak_gamma)))])
    # the mean test curve at the chosen γ (log-linear between grid points; clamped at the ends,
    # where γ below the grid's first point changes almost nothing)
    at = float(np.interp(np.log10(max(gamma, grid[0])), np.log10(grid), test))
    ratio = np.inf if gamma <= 0 else max(gamma / peak_gamma, peak_gamma / gamma)
    if ratio < factor or peak - at < drop:
        return None
    n = sweep.values[method]["test"].shape[0]
    return Flag(method, OFF_PEAK, "warning",
                f"{registry.label(method)}'s chosen γ = {gamma:.4g} is far from where the "
                f"sensitivity sweep's test {sweep.metric} peaks (γ ≈ {peak_gamma:.3g}): "
                f"{peak:.3f} at the peak against {at:.3f} at the chosen γ (mean over {n} split "
                f"seed{'s' if n != 1 else ''}). The validation queries pick a γ that the test "
                "queries do not favour.")


def diagnose(result: ExperimentResult, sweep=None, *, metrics: tuple[str, ...] = COMPARED,
             alpha: float = 0.05, far_factor: float = 3.0, far_drop: float = 0.01) -> list[Flag]:
    """Flags about every fine-tuned method of ``result`` (warnings first, then in :data:`KINDS`
    order):

    * ``worse``: a compared metric (``metrics``, default NDCG/Recall/MRR@10) is lower than with no
      fine-tuning on the test or OOD queries (with before → after, Δ, 95% interval, p; "a real
      loss" when p < ``alpha`` and the interval is below zero);
    * ``edge``: the chosen γ is the largest (or smallest) value the search could pick
      (:func:`searched_range`); γ = 0 at the bottom of the range means nothing moved;
    * ``off-peak``: with a ``sweep`` (:class:`~nudge_core.sensitivity.SweepResult`), the chosen γ
      is more than ``far_factor`` times away from the γ where the sweep's mean test curve peaks and
      the curve at the chosen γ is at least ``far_drop`` below the peak;
    * ``unsure``: a gain (Δ > 0) whose 95% interval reaches zero or below.
    """
    flags: list[Flag] = []
    for method in result.methods:
        if method == registry.REFERENCE:
            continue
        flags += _quality_flags(result, method, metrics, alpha)
        for flag in (_edge_flag(result, method), _peak_flag(result, method, sweep, far_factor, far_drop)):
            if flag is not None:
                flags.append(flag)
    return sorted(flags, key=lambda f: (SEVERITIES.index(f.severity), KINDS.index(f.kind)))


def _verdict(row: dict, alpha: float) -> str:
    p = row["p_value"]
    clear = np.isfinite(p) and p < alpha and (row["ci_low"] > 0 or row["ci_high"] < 0)
    if abs(row["delta"]) <= 1e-12:
        return "zero"
    if clear:
        return "a clear gain" if row["delta"] > 0 else "a clear loss"
    return "within the noise (the interval includes zero)"


def ood_findings(rows: list[dict], metric: str = "ndcg@10", alpha: float = 0.05) -> list[str]:
    """Plain sentences about in-distribution vs OOD gains, computed from ``rows``
    (:func:`nudge_core.exports.ood_rows`: ``method``, ``part`` "in-distribution"/"OOD", ``delta``,
    ``ci_low``, ``ci_high``, ``p_value``), so the OOD page's text always says what its chart shows:
    one sentence per method (both gains, the OOD interval and p, and whether the OOD change is
    clear of zero), then which method gains most and least on OOD queries and who loses."""
    by = {}
    for r in rows:
        by.setdefault(r["method"], {})[r["part"]] = r
    out = []
    for m, parts in by.items():
        if "OOD" not in parts:
            continue
        o = parts["OOD"]
        ind = parts.get("in-distribution")
        head = f"{registry.label(m)}: {metric} " + (f"{ind['delta']:+.3f} in-distribution, " if ind else "")
        out.append(head + f"{o['delta']:+.3f} on OOD queries (95% interval {o['ci_low']:+.3f} to "
                   f"{o['ci_high']:+.3f}, p = {o['p_value']:.3g}): the OOD change is "
                   f"{_verdict(o, alpha)}.")
    ood = {m: p["OOD"] for m, p in by.items() if "OOD" in p}
    if len(ood) >= 2:
        order = sorted(ood, key=lambda m: ood[m]["delta"], reverse=True)
        best, worst = order[0], order[-1]
        if ood[best]["delta"] - ood[worst]["delta"] > 1e-12:
            verb = "gains" if ood[best]["delta"] > 0 else "loses"
            out.append(f"On OOD queries {registry.label(best)} {verb} "
                       f"{'most' if verb == 'gains' else 'least'} ({ood[best]['delta']:+.3f}) and "
                       f"{registry.label(worst)} "
                       f"{'gains least' if ood[worst]['delta'] > 0 else 'loses most'} "
                       f"({ood[worst]['delta']:+.3f}).")
        else:
            out.append(f"On OOD queries every method changes {metric} by the same amount "
                       f"({ood[best]['delta']:+.3f}).")
    losers = [m for m in ood if ood[m]["delta"] < -1e-12]
    if losers:
        out.append("Worse than no fine-tuning on OOD queries: "
                   + ", ".join(f"{registry.label(m)} ({ood[m]['delta']:+.3f}, p = "
                               f"{ood[m]['p_value']:.3g})" for m in losers) + ".")
    elif ood:
        out.append("No method does worse than no fine-tuning on the OOD queries.")
    return out
