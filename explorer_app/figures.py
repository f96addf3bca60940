"""Plotly figures for the app (and its Export page): pure functions from engine results to figures.

No numbers are computed here beyond what a chart needs (axis ranges, colours); every value comes
from the engine (:mod:`nudge_core.experiment`, :mod:`nudge_core.sensitivity`,
:mod:`nudge_core.projection`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nudge_core import registry
from nudge_core.metrics import KS
from nudge_core.registry import colour, label
from nudge_core.significance import TIE_TOLERANCE

PART_COLOURS = {"train": "#2ca02c", "val": "#ff7f0e", "test": "#1f77b4", "ood": "#d62728"}
PART_LABELS = {"train": "train", "val": "validation", "test": "test", "ood": "OOD"}


def _exact_curve(method: str) -> bool:
    """True when the method's validation curve is known at every γ (a step function)."""
    return registry.get(method).gamma.default_grid is None


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
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
                          annotation_text=f"chosen γ={chosen[m]:.3g}", annotation_position="top right")
        if current and m in current:
            fig.add_vline(x=current[m], line=dict(color="#ff7f0e", width=2), row=1, col=i,
                          annotation_text=f"slider γ={current[m]:.3g}", annotation_position="bottom right")
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
    return _layout(fig, "Validation objective vs γ (dashed line: the γ NUDGE picks)", 430)


def metrics_by_k_figure(metrics: dict[str, dict[str, float]], family: str = "ndcg") -> go.Figure:
    """``family``@k vs k, one line per method (``metrics[method]`` is the flat metrics dict)."""
    fig = go.Figure()
    for m, values in metrics.items():
        fig.add_trace(go.Scatter(x=list(KS), y=[values[f"{family}@{k}"] for k in KS],
                                 mode="lines+markers", name=label(m), line=dict(color=colour(m))))
    fig.update_xaxes(title_text="k", type="category")
    fig.update_yaxes(title_text=f"{family.upper() if family != 'ndcg' else 'NDCG'}@k")
    return _layout(fig, f"Test {family.upper() if family != 'ndcg' else 'NDCG'}@k by method", 380)


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
    return _layout(fig, title or f"Change in test {metric} with 95% bootstrap interval", 380)


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
    return _layout(fig, f"Per-query {metric}: {label(method)} vs no fine-tuning", 520)


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
    return _layout(fig, f"Gain in {metric}: in-distribution vs out-of-distribution test queries", 420)


def movement_figure(layout, counts: np.ndarray, *, arrows: int = 50, shift: np.ndarray | None = None,
                    queries: dict[str, np.ndarray] | None = None,
                    highlight: dict[str, np.ndarray] | None = None, title: str = "") -> go.Figure:
    """Records before (grey → coloured by pull count), arrows from old to new position for the
    ``arrows`` records that moved most, queries overlaid; ``highlight`` maps a label to record rows
    drawn as large markers (e.g. a query's relevant records, its top-k before and after)."""
    fig = go.Figure()
    points = [np.asarray(xy).reshape(-1, 2) for xy in (highlight or {}).values()]
    points = np.vstack(points) if points else np.zeros((0, 2))
    box = None
    if len(points):  # zoom onto the picked query's neighbourhood
        lo, hi = points.min(axis=0), points.max(axis=0)
        pad = np.maximum((hi - lo) * 0.25, 1.0)
        box = (lo - pad, hi + pad)

    def inside(p: np.ndarray) -> bool:
        return box is None or bool(np.all(p >= box[0]) and np.all(p <= box[1]))

    c = np.asarray(counts)[layout.rows]
    idle = c == 0
    fig.add_trace(go.Scattergl(x=layout.xy[idle, 0], y=layout.xy[idle, 1], mode="markers",
                               marker=dict(color="#c7c7c7", size=3), name="records no training query pulls",
                               hoverinfo="skip"))
    pulled = ~idle
    if pulled.any():
        fig.add_trace(go.Scattergl(
            x=layout.xy[pulled, 0], y=layout.xy[pulled, 1], mode="markers",
            marker=dict(color=c[pulled], size=5, colorscale="Viridis", showscale=True,
                        colorbar=dict(title="training<br>queries", len=0.6)),
            name="records pulled (before)", text=[f"row {r}: {n} training queries" for r, n in
                                                  zip(layout.rows[pulled], c[pulled])],
            hoverinfo="text"))
    if len(layout.moved_rows):
        fig.add_trace(go.Scattergl(x=layout.after[:, 0], y=layout.after[:, 1], mode="markers",
                                   marker=dict(color="#ff9896", size=5, symbol="diamond"),
                                   name="moved records (after)", hoverinfo="skip"))
        # most moved in embedding space first; among equal shifts (NUDGE-M moves all by γ), the
        # ones that moved furthest on the map
        disp = np.linalg.norm(layout.after - layout.before, axis=1)
        size = np.round(np.asarray(shift), 4) if shift is not None else np.zeros(len(disp))
        order = np.lexsort((-disp, -size))[:arrows]
        if len(order):
            xs = np.column_stack([layout.before[order, 0], layout.after[order, 0],
                                  np.full(len(order), np.nan)]).ravel()
            ys = np.column_stack([layout.before[order, 1], layout.after[order, 1],
                                  np.full(len(order), np.nan)]).ravel()
            fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", line=dict(color="#d62728", width=2),
                                       name=f"movement of the {len(order)} records that moved most",
                                       hoverinfo="skip", connectgaps=False))
        for i in order:
            if not (inside(layout.before[i]) and inside(layout.after[i])):
                continue  # arrowheads are not clipped to the plot area
            fig.add_annotation(x=layout.after[i, 0], y=layout.after[i, 1], ax=layout.before[i, 0],
                               ay=layout.before[i, 1], xref="x", yref="y", axref="x", ayref="y",
                               showarrow=True, arrowhead=2, arrowsize=1, arrowwidth=2,
                               arrowcolor="#d62728", text="")
    marks = {"train": ("triangle-up", "#2ca02c"), "test": ("x", "#1f77b4"), "ood": ("cross", "#ff7f0e"),
             "val": ("triangle-down", "#8c564b")}
    for name, xy in (queries or {}).items():
        sym, col = marks.get(name, ("circle-open", "black"))
        fig.add_trace(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers",
                                   marker=dict(symbol=sym, color=col, size=7, opacity=0.8),
                                   name=f"{name} queries", hoverinfo="skip"))
    styles = {0: ("star", "#ffd700", 16), 1: ("circle-open", "#1f77b4", 14), 2: ("circle-open", "#d62728", 11),
              3: ("x-thin-open", "black", 16)}
    for n, (name, xy) in enumerate((highlight or {}).items()):
        sym, col, size = styles.get(n, ("circle-open", "black", 10))
        fig.add_trace(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers",
                                   marker=dict(symbol=sym, color=col, size=size,
                                               line=dict(width=2, color=col)), name=name))
    if box is not None:
        fig.update_xaxes(range=[float(box[0][0]), float(box[1][0])])
        fig.update_yaxes(range=[float(box[0][1]), float(box[1][1])])
    fig.update_xaxes(showticklabels=False, title_text=f"{layout.method.upper()} 1")
    fig.update_yaxes(showticklabels=False, title_text=f"{layout.method.upper()} 2")
    return _layout(fig, title or f"Records before and after fine-tuning ({layout.method.upper()}, "
                   "fitted on the originals)", 640)


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
    # Shape annotations are misplaced on log axes, so lines and their labels are added separately
    # (annotation x on a log axis is given in log10 units).
    def mark(x: float, colour: str, dash: str, text: str, y: float) -> None:
        fig.add_vline(x=x, line=dict(color=colour, dash=dash))
        fig.add_annotation(x=float(np.log10(x)), y=y, xref="x", yref="paper", text=text,
                           showarrow=False, xanchor="left", font=dict(color=colour, size=11))

    if marks["val_peak"] is not None:
        mark(marks["val_peak"], PART_COLOURS["val"], "dash", "validation peak", 1.0)
    if marks["test_peak"] is not None:
        mark(marks["test_peak"], PART_COLOURS["test"], "dot", "test peak: gains stop", 0.93)
    if marks["overfit"] is not None:
        fig.add_vrect(x0=marks["overfit"], x1=float(g[-1]), fillcolor="#d62728", opacity=0.07,
                      line_width=0)
        fig.add_annotation(x=float(np.log10(marks["overfit"])), y=0.05, xref="x", yref="paper",
                           text="overfitting →", showarrow=False, xanchor="left",
                           font=dict(color="#d62728", size=11))
    for gamma in sweep.chosen.get(method, []):
        fig.add_vline(x=gamma, line=dict(color="black", width=1), opacity=0.4)
    fig.update_xaxes(range=[float(np.log10(g[0])), float(np.log10(g[-1]))])
    fig.update_xaxes(type="log", title_text="γ (log scale)")
    fig.update_yaxes(title_text=sweep.metric)
    return _layout(fig, f"{label(method)}: {sweep.metric} vs γ (thin black lines: γ chosen on "
                   "validation)", 460)


def figures_html(figs: dict[str, go.Figure], title: str = "NUDGE Explorer figures") -> bytes:
    """One self-contained HTML file holding every figure (plotly.js inlined once, works offline)."""
    parts = []
    for i, (name, fig) in enumerate(figs.items()):
        parts.append(f"<h2>{name}</h2>")
        parts.append(fig.to_html(include_plotlyjs=(i == 0), full_html=False))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h1>{title}</h1>{body}</body></html>").encode("utf-8")
