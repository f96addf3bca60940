"""Plotly figures for the app (and its Export page): pure functions from engine results to figures.

No numbers are computed here beyond what a chart needs (axis ranges, colours); every value comes
from the engine (:mod:`nudge_core.experiment`, :mod:`nudge_core.sensitivity`,
:mod:`nudge_core.projection`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nudge_core import registry
from nudge_core.exports import ood_rows
from nudge_core.metrics import KS
from nudge_core.registry import colour, label
from nudge_core.significance import TIE_TOLERANCE

PART_COLOURS = {"train": "#2ca02c", "val": "#ff7f0e", "test": "#1f77b4", "ood": "#d62728"}
PART_LABELS = {"train": "train", "val": "validation", "test": "test", "ood": "OOD"}


def _exact_curve(method: str) -> bool:
    """True when the method's validation curve is known at every γ (a step function)."""
    return registry.get(method).gamma.default_grid is None


def base_layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0, xanchor="left"), height=height,
                      margin=dict(l=50, r=20, t=60, b=110),
                      legend=dict(orientation="h", yanchor="top", y=-0.16, x=0, xanchor="left"))
    return fig


def gamma_axis(gammas: np.ndarray, chosen: float | None) -> list[float]:
    """[0, top] of the γ axis for a curve evaluated at ``gammas`` with ``chosen`` marked (the
    Fine-tune page samples the test curve on exactly this range)."""
    finite = np.asarray(gammas, dtype=float)
    finite = finite[np.isfinite(finite)]
    top = float(finite.max()) if len(finite) else 1.0
    want = max(0.5, 3 * (chosen or 0.0))
    return [0.0, min(top, want) if top > 0 else 1.0]


def gamma_curve_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]],
                       chosen: dict[str, float], test_curves: dict[str, tuple[np.ndarray, np.ndarray]]
                       | None = None, current: dict[str, float] | None = None,
                       exact: dict[str, tuple[float, float]] | None = None) -> go.Figure:
    """Validation objective vs γ for each method (one panel each), chosen γ marked; optional test
    NDCG@10 on a second axis; ``current`` marks the slider's γ; ``exact`` gives, for methods whose
    curve is an exact step function searched within bounds, those bounds (shaded)."""
    methods = list(curves)
    fig = make_subplots(rows=1, cols=max(1, len(methods)), subplot_titles=[label(m) for m in methods],
                        specs=[[{"secondary_y": True}] * max(1, len(methods))])
    for i, m in enumerate(methods, start=1):
        g, obj = curves[m]
        steps = _exact_curve(m) or m in (exact or {})
        fig.add_trace(go.Scatter(x=g, y=obj, mode="lines" if steps else "lines+markers",
                                 line=dict(color=colour(m), shape="hv" if steps else "linear"),
                                 name=f"{label(m)}: validation objective", legendgroup=m), row=1, col=i)
        if m in (exact or {}):
            lo, hi = exact[m]
            fig.add_vrect(x0=lo, x1=hi, fillcolor=colour(m), opacity=0.07, line_width=0, row=1, col=i,
                          annotation_text="allowed γ", annotation_position="top left")
        if m in chosen:
            fig.add_vline(x=chosen[m], line=dict(color="black", dash="dash"), row=1, col=i,
                          annotation_text=f"chosen γ={chosen[m]:.4g}", annotation_position="top right")
        if current and m in current:
            fig.add_vline(x=current[m], line=dict(color="#ff7f0e", width=2), row=1, col=i,
                          annotation_text=f"slider γ={current[m]:.4g}", annotation_position="bottom right")
        if test_curves and m in test_curves:
            tg, tv = test_curves[m]
            fig.add_trace(go.Scatter(x=tg, y=tv, mode="lines", line=dict(color=colour(m), dash="dot"),
                                     name=f"{label(m)}: test NDCG@10", legendgroup=m),
                          row=1, col=i, secondary_y=True)
            # explicit "auto": Streamlit's theme syncs secondary ticks to the primary grid, which
            # labels the test axis with odd values (0.4789, 0.4619, ...)
            fig.update_yaxes(title_text="test NDCG@10", row=1, col=i, secondary_y=True,
                             tickmode="auto", nticks=6, tickformat=".2f", showgrid=False)
        fig.update_xaxes(title_text="γ", range=gamma_axis(g, chosen.get(m)), row=1, col=i)
        fig.update_yaxes(title_text="validation objective" if i == 1 else None, row=1, col=i,
                         secondary_y=False)
    return base_layout(fig, "Validation objective vs γ (dashed line: the γ NUDGE picks)", 430)


#: How each metric family of :func:`nudge_core.metrics.evaluate` is named on charts.
FAMILY_LABELS = {"ndcg": "NDCG", "recall": "Recall", "recall_uncapped": "Recall (uncapped)",
                 "mrr": "MRR"}


def metrics_by_k_figure(metrics: dict[str, dict[str, float]], family: str = "ndcg") -> go.Figure:
    """``family``@k vs k, one line per method (``metrics[method]`` is the flat metrics dict)."""
    fig = go.Figure()
    for m, values in metrics.items():
        fig.add_trace(go.Scatter(x=list(KS), y=[values[f"{family}@{k}"] for k in KS],
                                 mode="lines+markers", name=label(m), line=dict(color=colour(m))))
    name = FAMILY_LABELS.get(family, family)
    fig.update_xaxes(title_text="k", type="category")
    fig.update_yaxes(title_text=f"{name}@k")
    return base_layout(fig, f"Test {name}@k by method", 380)


def delta_figure(comparisons: dict[str, dict[str, dict[str, float]]], metric: str = "ndcg@10",
                 title: str | None = None) -> go.Figure:
    """Mean change vs no fine-tuning with its 95% bootstrap interval, one bar per method."""
    methods = [m for m in comparisons if metric in comparisons[m]]
    c = [comparisons[m][metric] for m in methods]
    fig = go.Figure(go.Bar(
        x=[label(m) for m in methods], y=[x["delta"] for x in c],
        marker_color=[colour(m) for m in methods],
        error_y=dict(type="data", symmetric=False, array=[x["ci_high"] - x["delta"] for x in c],
                     arrayminus=[x["delta"] - x["ci_low"] for x in c]),
        text=[f"{x['delta']:+.3f}<br>p={x['p_value']:.2g}" for x in c], textposition="inside",
        insidetextanchor="start",
        showlegend=False))
    fig.update_yaxes(title_text=f"Δ {metric} (after − before)", zeroline=True)
    return base_layout(fig, title or f"Change in test {metric} with 95% bootstrap interval", 380)


def per_query_scatter(before: np.ndarray, after: np.ndarray, ids: Sequence[str], method: str,
                      metric: str = "ndcg@10") -> go.Figure:
    """Each test query's ``metric`` before (x) vs after (y); above the diagonal = a win."""
    before, after = np.asarray(before), np.asarray(after)
    diff = after - before
    groups = (("wins", diff > TIE_TOLERANCE, "#2ca02c"), ("losses", diff < -TIE_TOLERANCE, "#d62728"),
              ("ties", np.abs(diff) <= TIE_TOLERANCE, "#7f7f7f"))
    fig = go.Figure()
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-0.008, 0.008, (2, len(before)))  # ties stack on the diagonal otherwise
    for name, mask, group_colour in groups:
        fig.add_trace(go.Scattergl(
            x=before[mask] + jitter[0, mask], y=after[mask] + jitter[1, mask], mode="markers",
            marker=dict(color=group_colour, size=7, opacity=0.7),
            name=f"{name} ({int(mask.sum())})", text=[ids[i] for i in np.flatnonzero(mask)],
            customdata=np.column_stack([before[mask], after[mask]]),
            hovertemplate="%{text}<br>before %{customdata[0]:.3f}<br>after %{customdata[1]:.3f}"
                          "<extra></extra>"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="black", dash="dot"),
                             showlegend=False, hoverinfo="skip"))
    fig.update_xaxes(title_text=f"{metric} before", range=[-0.04, 1.04])
    fig.update_yaxes(title_text=f"{metric} after ({label(method)})", range=[-0.04, 1.04])
    return base_layout(fig, f"Per-query {metric}: {label(method)} vs no fine-tuning", 520)


def ood_figure(rows: Sequence[dict], metric: str = "ndcg@10") -> go.Figure:
    """Grouped bars: change in ``metric`` on in-distribution vs OOD test queries per method.

    ``rows``: dicts with ``method``, ``part`` ("in-distribution"/"OOD"), ``delta``, ``ci_low``,
    ``ci_high`` (see :func:`exports.ood_rows`)."""
    fig = go.Figure()
    for part, part_colour in (("in-distribution", "#1f77b4"), ("OOD", "#d62728")):
        sel = [r for r in rows if r["part"] == part]
        fig.add_trace(go.Bar(
            name=part, x=[label(r["method"]) for r in sel], y=[r["delta"] for r in sel],
            marker_color=part_colour,
            error_y=dict(type="data", symmetric=False, array=[r["ci_high"] - r["delta"] for r in sel],
                         arrayminus=[r["delta"] - r["ci_low"] for r in sel]),
            text=[f"{r['delta']:+.3f}" for r in sel], textposition="inside", insidetextanchor="start"))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text=f"Δ {metric} vs no fine-tuning", zeroline=True)
    return base_layout(fig, f"Gain in {metric}: in-distribution vs out-of-distribution test queries", 420)


def sensitivity_figure(sweep, method: str, band: bool = True) -> go.Figure:
    """NDCG@10 on train / validation / test / OOD queries vs γ (log axis) for one method, with the
    range over split seeds as a band and the markers of :meth:`SweepResult.markers`."""
    g = sweep.gammas[method]
    fig = go.Figure()
    for part in ("train", "val", "test", "ood"):
        if part not in sweep.values[method]:
            continue
        part_colour = PART_COLOURS[part]
        if band and sweep.values[method][part].shape[0] > 1:
            lo, hi = sweep.band(method, part)
            fig.add_trace(go.Scatter(x=np.concatenate([g, g[::-1]]), y=np.concatenate([hi, lo[::-1]]),
                                     fill="toself", fillcolor=part_colour, opacity=0.15,
                                     line=dict(width=0), hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=g, y=sweep.mean(method, part), mode="lines+markers",
                                 line=dict(color=part_colour), marker=dict(size=5),
                                 name=PART_LABELS[part]))
    marks = sweep.markers(method)

    # The marker lines are named in the legend (below the plot), not by labels on the plot, which
    # overlapped the curves; an empty trace carries each legend entry.
    def mark(x: float, colour: str, dash: str, text: str) -> None:
        fig.add_vline(x=x, line=dict(color=colour, dash=dash))
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=text, hoverinfo="skip",
                                 line=dict(color=colour, dash=dash)))

    if marks["val_peak"] is not None:
        mark(marks["val_peak"], PART_COLOURS["val"], "dash",
             f"validation peak (γ ≈ {marks['val_peak']:.3g})")
    if marks["test_peak"] is not None:
        mark(marks["test_peak"], PART_COLOURS["test"], "dot",
             f"test peak: gains stop (γ ≈ {marks['test_peak']:.3g})")
    if marks["overfit"] is not None:
        fig.add_vrect(x0=marks["overfit"], x1=float(g[-1]), fillcolor="#d62728", opacity=0.07,
                      line_width=0)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", hoverinfo="skip",
                                 marker=dict(symbol="square", size=12, color="rgba(214,39,40,0.25)"),
                                 name=f"overfitting (from γ ≈ {marks['overfit']:.3g})"))
    chosen = sweep.chosen.get(method, [])
    for gamma in chosen:
        fig.add_vline(x=gamma, line=dict(color="black", width=1), opacity=0.4)
    if chosen:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", hoverinfo="skip",
                                 line=dict(color="rgba(0,0,0,0.4)", width=1),
                                 name="γ your settings choose" + (" (one per seed)" if len(chosen) > 1
                                                                  else "")))
    fig.update_xaxes(range=[float(np.log10(g[0])), float(np.log10(g[-1]))])
    fig.update_xaxes(type="log", title_text="γ (log scale)")
    fig.update_yaxes(title_text=sweep.metric)
    return base_layout(fig, f"{label(method)}: {sweep.metric} vs γ", 480)


def export_figures(result, sweep=None,
                   movement: dict[str, go.Figure] | None = None) -> dict[str, go.Figure]:
    """Every figure of a run for the Export page's HTML file, by heading: test metrics by k, the
    change with its interval, the γ curves, per-query scatters, OOD (when checked), the
    Sensitivity page's sweep (``sweep``, a :class:`~nudge_core.sensitivity.SweepResult`, when one
    was drawn for this run) and ``movement`` (heading -> figure, from the Movement page's figure
    function, when it has one)."""
    ref = registry.REFERENCE
    figs = {"Test NDCG@k": metrics_by_k_figure({m: r.metrics for m, r in result.methods.items()})}
    compared = {m: r.comparison for m, r in result.methods.items() if m != ref}
    if compared:
        figs["Change with 95% interval"] = delta_figure(compared)
    nudges = [m for m in result.methods if registry.get(m).gamma is not None]
    if nudges:
        figs["γ curve"] = gamma_curve_figure(
            {m: (result.methods[m].estimator.curve_gammas_,
                 result.methods[m].estimator.curve_objective_) for m in nudges},
            {m: result.methods[m].gamma for m in nudges})
    for m in [m for m in result.methods if m != ref]:
        figs[f"Per query: {label(m)}"] = per_query_scatter(
            result.methods[ref].per_query["ndcg@10"], result.methods[m].per_query["ndcg@10"],
            result.test.ids, m)
    if result.ood is not None:
        figs["OOD"] = ood_figure(ood_rows(result))
    if sweep is not None:
        for m in sweep.values:
            figs[f"Sensitivity: {label(m)}"] = sensitivity_figure(sweep, m)
    figs.update(movement or {})  # the Movement page's figure(s), when given
    return figs


def figures_html(figs: dict[str, go.Figure], title: str = "NUDGE Explorer figures") -> bytes:
    """One self-contained HTML file holding every figure (plotly.js inlined once, works offline).
    Headings and the title are escaped: they carry dataset names and record texts."""
    parts = []
    title = html.escape(title)
    for i, (name, fig) in enumerate(figs.items()):
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(fig.to_html(include_plotlyjs=(i == 0), full_html=False))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h1>{title}</h1>{body}</body></html>").encode("utf-8")
