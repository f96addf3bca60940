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
                                 hoverinfo="skip", showlegend=False))
    else:
        u, w = np.mgrid[0:2 * np.pi:30j, 0:np.pi:16j]
        fig.add_trace(go.Surface(x=np.cos(u) * np.sin(w), y=np.sin(u) * np.sin(w), z=np.cos(w),
                                 opacity=0.12, showscale=False, hoverinfo="skip",
                                 colorscale=[[0, "#cccccc"], [1, "#cccccc"]]))
    pulled = np.zeros(len(v), bool)
    for q, answers in zip(toy.train.emb, toy.train.answers):
        pulled[answers] = True
        for a in answers:
            seg = np.vstack([_unit(q[None])[0], v[a]])
            fig.add_trace(_scatter(seg, dim, mode="lines", line=dict(color="#2ca02c", dash="dot"),
                                   hoverinfo="skip", showlegend=False))
    for method, e in moved.items():
        g = gammas[method]
        if dim == 2 and g > 0:
            for i in np.flatnonzero(pulled):
                if not registry.get(method).estimator.unit_norm:  # the ball ||e - v|| <= γ
                    ring = v[i] + g * _circle(90)
                else:  # the cap: points of the circle within √γ of v
                    ring = _circle(721)
                    ring = ring[np.sum((ring - v[i]) ** 2, axis=1) <= g]
                fig.add_trace(go.Scatter(x=ring[:, 0], y=ring[:, 1], mode="lines",
                                         line=dict(color=colour(method), width=1), opacity=0.35,
                                         hoverinfo="skip", showlegend=False))
        fig.add_trace(_scatter(e, dim, mode="markers+text", text=[str(i) for i in range(len(e))],
                               textposition="top center",
                               marker=dict(color=colour(method), size=size, symbol="circle"),
                               name=f"{label(method)} records at γ = {g:.3g}"))
    fig.add_trace(_scatter(v, dim, mode="markers+text", text=[str(i) for i in range(len(v))],
                           textposition="bottom center", name="records before",
                           marker=dict(color="#7f7f7f", size=size, symbol="circle-open")))
    for part, qs in (("train", toy.train), ("val", toy.val), ("test", toy.test), ("ood", toy.ood)):
        if qs is None or not len(qs):
            continue
        symbol, col, name = PART_STYLE[part]
        fig.add_trace(_scatter(_unit(qs.emb), dim, mode="markers", name=name,
                               marker=dict(color=col, size=size, symbol=symbol),
                               text=[f"{qid} → record {', '.join(map(str, a))}"
                                     for qid, a in zip(qs.ids, qs.answers)], hoverinfo="text"))
    font = dict(size=20 if big else 13)
    fig.update_layout(height=640 if big else 540, margin=dict(l=10, r=10, t=30, b=10), font=font,
                      legend=dict(orientation="h", y=-0.05))
    if dim == 2:
        reach = max(1.3, float(np.abs(np.vstack(list(moved.values()) + [v])).max()) + 0.15)
        fig.update_xaxes(range=[-reach, reach], zeroline=False, showgrid=False)
        fig.update_yaxes(range=[-reach, reach], zeroline=False, showgrid=False, scaleanchor="x",
                         scaleratio=1)
    else:
        fig.update_layout(scene=dict(aspectmode="data"))
    return fig
