"""The Playground's figure: a toy problem on the unit circle (2-D) or sphere (3-D), before and
after NUDGE at the sliders' γ. Every position comes from :func:`nudge_core.playground.positions`
(the engine's fitted embeddings); this module only draws them."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from nudge_core.playground import Toy
from nudge_core import registry
from nudge_core.registry import colour, label

PART_STYLE = {"train": ("x", "#2ca02c", "training query"), "val": ("diamond", "#ff7f0e", "validation query"),
              "test": ("cross", "#17becf", "test query"), "ood": ("square", "#8c564b", "OOD query")}


def _circle(n: int = 361) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n)
    return np.column_stack([np.cos(t), np.sin(t)])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _cap(v: np.ndarray, gamma: float) -> np.ndarray:
    """(m, 2) the arc of the unit circle with ||e − v||² ≤ γ, in order (the arc may straddle
    angle 0, so start the walk at a point outside it)."""
    c = _circle(721)[:-1]
    inside = np.sum((c - v) ** 2, axis=1) <= gamma
    if inside.all():
        return _circle(721)
    start = int(np.argmin(inside))
    return np.roll(c, -start, axis=0)[np.roll(inside, -start)]


def _scatter(xy: np.ndarray, dim: int, **kw):
    if dim == 2:
        return go.Scatter(x=xy[:, 0], y=xy[:, 1], **kw)
    return go.Scatter3d(x=xy[:, 0], y=xy[:, 1], z=xy[:, 2], **kw)


def playground_figure(toy: Toy, moved: dict[str, np.ndarray], gammas: dict[str, float],
                      big: bool = False) -> go.Figure:
    """Records (grey, numbered) and each method's records at its γ (``moved[method]``: (n, dim)),
    queries by part with a line from each training query to its relevant records, NUDGE-M's
    constraint circles (radius γ around each pulled record, 2-D) and NUDGE-N's caps (the arc within
    √γ of each pulled record)."""
    dim, v = toy.dim, toy.records
    size = 16 if big else 10
    fig = go.Figure()
    if dim == 2:
        c = _circle()
        fig.add_trace(go.Scatter(x=c[:, 0], y=c[:, 1], mode="lines", line=dict(color="#bbbbbb"),
                                 hoverinfo="skip", showlegend=False, name="unit circle"))
    else:
        u, w = np.mgrid[0:2 * np.pi:30j, 0:np.pi:16j]
        fig.add_trace(go.Surface(x=np.cos(u) * np.sin(w), y=np.sin(u) * np.sin(w), z=np.cos(w),
                                 opacity=0.12, showscale=False, hoverinfo="skip",
                                 colorscale=[[0, "#cccccc"], [1, "#cccccc"]], name="unit sphere"))
    reach = 1.0  # how far from the origin anything drawn lies (2-D axes' range)
    pulled = np.zeros(len(v), bool)
    links = []  # one trace for all training links (a trace each is slow past ~100 queries)
    for q, answers in zip(toy.train.emb, toy.train.answers):
        pulled[answers] = True
        for a in answers:
            links += [_unit(q[None])[0], v[a], np.full(dim, np.nan)]
    if links:
        fig.add_trace(_scatter(np.array(links), dim, mode="lines", name="training query → its record",
                               line=dict(color="#2ca02c", dash="dot"), hoverinfo="skip",
                               connectgaps=False))
    for method, e in moved.items():
        g = gammas[method]
        if dim == 2 and g > 0 and pulled.any():
            rings = []
            for i in np.flatnonzero(pulled):
                if not registry.get(method).estimator.unit_norm:  # the ball ||e - v|| <= γ
                    rings += [v[i] + g * _circle(90), np.full((1, 2), np.nan)]
                else:  # the cap: the arc of the circle within √γ of v
                    rings += [_cap(v[i], g), np.full((1, 2), np.nan)]
            ring = np.vstack(rings)
            reach = max(reach, float(np.nanmax(np.abs(ring))))
            fig.add_trace(go.Scatter(x=ring[:, 0], y=ring[:, 1], mode="lines", connectgaps=False,
                                     line=dict(color=colour(method), width=1.5), opacity=0.45,
                                     hoverinfo="skip", name=f"{label(method)} "
                                     + ("cap ||e − v||² ≤ γ" if registry.get(method).estimator.unit_norm
                                        else "ball ||e − v|| ≤ γ")))
        fig.add_trace(_scatter(e, dim, mode="markers+text", text=[str(i) for i in range(len(e))],
                               textposition="top center", textfont=dict(size=size + 4),
                               marker=dict(color=colour(method), size=size, symbol="circle"),
                               name=f"{label(method)} records at γ = {g:.3g}"))
    fig.add_trace(_scatter(v, dim, mode="markers+text", text=[str(i) for i in range(len(v))],
                           textposition="bottom center", textfont=dict(size=size + 4), name="records before",
                           marker=dict(color="#7f7f7f", size=size, symbol="circle-open")))
    for part, qs in (("train", toy.train), ("val", toy.val), ("test", toy.test), ("ood", toy.ood)):
        if qs is None or not len(qs):
            continue
        symbol, col, name = PART_STYLE[part]
        fig.add_trace(_scatter(_unit(qs.emb), dim, mode="markers", name=name,
                               marker=dict(color=col, size=size, symbol=symbol),
                               text=[f"{qid} → record {', '.join(map(str, a))}"
                                     for qid, a in zip(qs.ids, qs.answers)], hoverinfo="text"))
    font = dict(size=20 if big else 13)  # explicit everywhere: Streamlit's theme sets its own sizes
    fig.update_layout(height=760 if big else 560, margin=dict(l=10, r=10, t=30, b=10), font=font,
                      legend=dict(orientation="h", yanchor="top", y=-0.08, x=0,
                                  font=dict(size=18 if big else 13)))
    if dim == 2:
        reach = max(1.3, reach, float(np.abs(np.vstack(list(moved.values()) + [v])).max())) + 0.15
        fig.update_xaxes(range=[-reach, reach], zeroline=False, showgrid=False, tickfont=font)
        fig.update_yaxes(range=[-reach, reach], zeroline=False, showgrid=False, scaleanchor="x",
                         scaleratio=1, tickfont=font)
    else:
        fig.update_layout(scene=dict(aspectmode="data"))
    return fig


#: Radii of the invisible rings of clickable markers (one per degree) that turn a click near the
#: circle into a plotly selection event: plotly reports clicks on data points only, not on space.
CLICK_RADII = (0.8, 1.0, 1.2)
CLICK_TRACE = "click to move"


def add_click_rings(fig: go.Figure) -> go.Figure:
    """Add the clickable rings to a 2-D playground figure, in place (tiny transparent markers, no
    hover label: plotly picks the marker nearest the click, within its 20 px hover distance, so
    the click's direction is found to the degree; the selection of any point of the figure gives a direction, see
    :func:`clicked_angle`); :func:`without_click_rings` takes them off for an export."""
    t = np.radians(np.arange(360))
    xy = np.vstack([r * np.column_stack([np.cos(t), np.sin(t)]) for r in CLICK_RADII])
    fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", name=CLICK_TRACE,
                             marker=dict(size=2, color="rgba(0,0,0,0)"), hoverinfo="none",
                             showlegend=False))
    # a click selects one point; keep the rest of the figure undimmed until the page redraws it
    fig.update_traces(unselected=dict(marker=dict(opacity=1)), selector=dict(type="scatter"))
    return fig


def without_click_rings(fig: go.Figure) -> go.Figure:
    """A copy of the figure without the clickable rings (what the exports save)."""
    return go.Figure(data=[t for t in fig.data if t.name != CLICK_TRACE], layout=fig.layout)


def clicked_angle(event) -> float | None:
    """Degrees in (-180, 180] of the first point in a plotly selection event (the mapping
    ``st.plotly_chart(on_select=...)`` returns: ``{"selection": {"points": [{"x", "y", ...}]}}``),
    i.e. the click projected onto the unit circle; None if nothing is selected."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    for pt in points:
        if pt.get("x") is not None and pt.get("y") is not None and (pt["x"], pt["y"]) != (0, 0):
            return float(np.degrees(np.arctan2(pt["y"], pt["x"])))
    return None


def png_unavailable() -> str | None:
    """Why :func:`png_bytes` cannot work here (None if it can): plotly's PNG export needs the
    optional package kaleido (≥ 1.0), which drives an installed Chrome or Chromium (found on
    PATH or through $BROWSER_PATH) and never needs the network."""
    import importlib.util
    import os
    import shutil

    if importlib.util.find_spec("kaleido") is None:
        return "PNG export needs the optional package kaleido (pip install kaleido)"
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
    if not os.environ.get("BROWSER_PATH") and not any(shutil.which(n) for n in names):
        return ("PNG export needs Chrome or Chromium (kaleido drives it): install one, or point "
                "$BROWSER_PATH at it")
    return None


def png_bytes(fig: go.Figure, width: int = 1400, height: int = 1000) -> bytes:
    """The figure as a PNG (width × height px) through kaleido and a headless Chromium; a few
    seconds, since kaleido starts the browser for each export."""
    return fig.to_image(format="png", width=width, height=height)
