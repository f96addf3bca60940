"""The Movement page's maps, computed once per content and drawn with plotly.

Layouts are cached process-wide under :func:`layout_key`: a hash of what shapes the map (the
dataset's content, the moved rows and their new vectors, the train/test query vectors, the
projection and its settings). Anything else about the run (an OOD set, the other methods) leaves
the key, and the map, as they were. A UMAP map is computed in one background worker thread
(:data:`_WORKER`, so two numba-parallel UMAPs never overlap) while the page shows the PCA map;
the page polls :class:`Job` and swaps UMAP in when it is done.

:func:`export_figures` gives the Export page the Movement figures of a run.
"""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go

from nudge_core import registry
from nudge_core.faithfulness import Faithfulness, LocalView, map_faithfulness
from nudge_core.projection import DEFAULT_MAX_POINTS, Layout, compute_layout, pull_counts
from nudge_core.registry import label

from .figures import base_layout

#: At most this many layouts (and their faithfulness) are kept in the process.
MAX_LAYOUTS = 8
_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="movement-map")


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        if a.size:
            h.update(a)  # the buffer itself, no copy
    return h.hexdigest()[:20]


def layout_key(data_key: str, moved_rows: np.ndarray, moved_emb: np.ndarray,
               queries: dict[str, np.ndarray], projection: str, max_points: int,
               n_epochs: int | None) -> str:
    """The cache key of a map: ``data_key`` (the corpus' content) plus a hash of the moved rows,
    their new vectors, each query set's vectors, and the projection settings. Nothing else: an
    OOD set or another method's fit does not change the map."""
    q = [np.asarray(queries[n], np.float32) for n in sorted(queries)]
    digest = _digest(np.asarray(moved_rows, np.int64), np.asarray(moved_emb, np.float32), *q)
    return (f"{data_key}:{digest}:{'/'.join(sorted(queries))}:{projection}:{int(max_points)}"
            f":{n_epochs}")


@dataclass
class Job:
    """A map being computed (or done): ``future`` gives the :class:`Layout`; ``progress`` holds
    the last (fraction, message) reported; ``faith`` the faithfulness once asked for."""

    future: Future
    started: float = field(default_factory=time.time)
    progress: tuple[float, str] = (0.0, "waiting for the map worker")
    faith: dict = field(default_factory=dict)

    def done(self) -> bool:
        return self.future.done()


_JOBS: dict[str, Job] = {}
_LOCK = threading.Lock()


def layout_job(key: str, compute, background: bool) -> Job:
    """The :class:`Job` for ``key``, started if new: ``compute(progress)`` returns a Layout; it
    runs in the background worker when ``background``, else here (the result is then ready)."""
    with _LOCK:
        job = _JOBS.get(key)
        if job is not None and not (job.done() and job.future.exception() is not None):
            _JOBS[key] = _JOBS.pop(key)  # most recent last
            return job
        job = Job(Future())
        _JOBS[key] = job
        while len(_JOBS) > MAX_LAYOUTS:
            _JOBS.pop(next(iter(_JOBS)))

    def run() -> None:
        def report(fraction: float, message: str) -> None:
            job.progress = (fraction, message)
        try:
            job.future.set_result(compute(report))
        except BaseException as exc:  # noqa: BLE001 - handed to the page through the future
            job.future.set_exception(exc)

    if background:
        _WORKER.submit(run)
    else:
        run()
    return job


def map_inputs(result, method: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(moved rows, their new vectors, {"train", "test"} query vectors) of ``method`` in ``result``."""
    est = result.methods[method].estimator
    ds = result.dataset
    queries = {"train": ds.queries(result.split.train).emb, "test": result.test.emb}
    return est.moved_, result.methods[method].embeddings[est.moved_], queries


def layout_for(result, method: str, projection: str, data_key: str, *, max_points: int,
               n_epochs: int | None = None, background: bool = False) -> Job:
    """The map of ``method``'s moves in ``result`` (a :class:`Job`; see :func:`layout_job`)."""
    rows, emb, queries = map_inputs(result, method)
    key = layout_key(data_key, rows, emb, queries, projection, max_points, n_epochs)
    corpus = result.dataset.corpus_emb
    return layout_job(key, lambda report: compute_layout(
        corpus, rows, emb, queries, method=projection, max_points=int(max_points),
        n_epochs=n_epochs, progress=report), background)


def faithfulness_of(job: Job, result, method: str, k: int = 10) -> Faithfulness:
    """:func:`~nudge_core.faithfulness.map_faithfulness` of a finished job's map (kept with it)."""
    if k not in job.faith:
        rows, emb, _ = map_inputs(result, method)
        job.faith[k] = map_faithfulness(job.future.result(), result.dataset.corpus_emb, emb, k=k)
    return job.faith[k]


# ---------------------------------------------------------------- labels
def record_label(ds, row: int, width: int = 60) -> str:
    """"<record id>: <start of its text>" (just the id when the dataset has no texts)."""
    rid = ds.corpus_ids[int(row)]
    text = (ds.corpus_text or {}).get(rid, "")
    text = " ".join(text.split())
    return f"{rid}: {text[:width]}{'…' if len(text) > width else ''}" if text else rid


class RecordLabels:
    """``labels[row]`` -> :func:`record_label` of ``ds``'s record ``row``, made when first asked
    for: the figures label a few thousand points, and a list for every record would cost seconds
    and ~100 bytes per record on a corpus of millions."""

    def __init__(self, ds, width: int = 60) -> None:
        self.ds, self.width, self._made = ds, width, {}

    def __getitem__(self, row) -> str:
        row = int(row)
        if row not in self._made:
            self._made[row] = record_label(self.ds, row, self.width)
        return self._made[row]


def query_label(ds, qid: str, width: int = 60) -> str:
    text = " ".join((ds.query_text or {}).get(qid, "").split())
    return f"{qid}: {text[:width]}{'…' if len(text) > width else ''}" if text else qid


# ---------------------------------------------------------------- figures
def zoom_box(points: np.ndarray, centre: np.ndarray, whole: np.ndarray,
             pad: float = 0.3, min_frac: float = 0.03,
             keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) corners of a view onto ``points`` (n, 2) centred on ``centre`` (2,), the picked
    query: a zoom never moves the query off centre and never grows past the map ``whole`` (N, 2).

    Each half-width is the points' distance from the centre on that axis (the largest for up to
    four points, else the 75th percentile, so one far top-10 record does not undo the zoom), plus
    ``pad`` of it; at least ``min_frac`` and at most half of the map's extent. Points farther out
    than that are off the view, which is what zooming means, except ``keep`` (m, 2) points (the
    query's relevant records), which are always in view (up to the map's extent)."""
    centre = np.asarray(centre, dtype=float).reshape(2)
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    every = np.vstack([np.asarray(whole, dtype=float).reshape(-1, 2), pts, centre[None]])
    extent = np.ptp(every, axis=0)
    extent = np.where(extent > 0, extent, 1.0)
    dist = np.abs(pts - centre) if len(pts) else np.zeros((1, 2))
    reach = dist.max(axis=0) if len(dist) <= 4 else np.percentile(dist, 75, axis=0)
    if keep is not None and len(keep):
        reach = np.maximum(reach, np.abs(np.asarray(keep, float).reshape(-1, 2) - centre).max(axis=0))
    half = np.clip(reach * (1 + pad), min_frac * extent, extent / 2)
    return centre - half, centre + half


def movement_figure(layout: Layout, counts: np.ndarray, *, record_labels,
                    arrows: int = 50, shift: np.ndarray | None = None,
                    after_norms: np.ndarray | None = None,
                    queries: dict[str, np.ndarray] | None = None,
                    highlight: dict[str, np.ndarray] | None = None, title: str = "") -> go.Figure:
    """Records before (grey → coloured by pull count), the moved records after (coloured by their
    length ‖e‖ when ``after_norms`` (m,) is given and not all 1: NUDGE-M's change of length),
    arrows from old to new position for the ``arrows`` records that moved most, queries overlaid.
    ``record_labels[row]`` is a record's hover text. ``highlight`` maps a label to (n, 2) points
    drawn large, the last being the picked query: the view is zoomed around them, query centred."""
    fig = go.Figure()
    box = None
    hl = {k: np.asarray(v).reshape(-1, 2) for k, v in (highlight or {}).items()}
    if hl:
        centre = list(hl.values())[-1]
        points = np.vstack(list(hl.values()))
        if len(centre):
            box = zoom_box(points, centre[0], np.vstack([layout.xy, layout.after]),
                           keep=list(hl.values())[0])  # the first group: relevant records

    def inside(p: np.ndarray) -> bool:
        return box is None or bool(np.all(p >= box[0]) and np.all(p <= box[1]))

    c = np.asarray(counts)[layout.rows]
    hover = np.array([record_labels[int(r)] for r in layout.rows], dtype=object)
    idle = c == 0
    fig.add_trace(go.Scattergl(x=layout.xy[idle, 0], y=layout.xy[idle, 1], mode="markers",
                               marker=dict(color="#c7c7c7", size=3),
                               name="records no training query pulls", text=hover[idle],
                               hovertemplate="%{text}<br>pulled by no training query<extra></extra>"))
    pulled = ~idle
    if pulled.any():
        fig.add_trace(go.Scattergl(
            x=layout.xy[pulled, 0], y=layout.xy[pulled, 1], mode="markers",
            marker=dict(color=c[pulled], size=5, colorscale="Viridis", showscale=True,
                        colorbar=dict(title="training<br>queries", len=0.45, y=0.75)),
            name="records pulled (before)", text=hover[pulled], customdata=c[pulled],
            hovertemplate="%{text}<br>pulled by %{customdata} training queries<extra></extra>"))
    if len(layout.moved_rows):
        moved_hover = [record_labels[int(r)] for r in layout.moved_rows]
        norms = None if after_norms is None else np.asarray(after_norms, dtype=float)
        if norms is not None and np.allclose(norms, 1.0, atol=1e-4):
            norms = None  # unit length after the move: nothing to draw
        marker = dict(color="#ff9896", size=6, symbol="diamond")
        if norms is not None:
            marker = dict(color=norms, size=7, symbol="diamond", colorscale="RdBu_r", cmid=1.0,
                          showscale=True,
                          colorbar=dict(title="length ‖e‖<br>after", len=0.45, y=0.22))
        fig.add_trace(go.Scattergl(
            x=layout.after[:, 0], y=layout.after[:, 1], mode="markers", marker=marker,
            name="moved records (after)" + (", coloured by length" if norms is not None else ""),
            text=moved_hover, customdata=norms if norms is not None else np.ones(len(moved_hover)),
            hovertemplate="%{text}<br>after the move, length %{customdata:.3f}<extra></extra>"))
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
    marks = {"train": ("triangle-up", "#2ca02c"), "test": ("x", "#1f77b4")}
    for name, xy in (queries or {}).items():
        sym, col = marks.get(name, ("circle-open", "black"))
        fig.add_trace(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers",
                                   marker=dict(symbol=sym, color=col, size=7, opacity=0.8),
                                   name=f"{name} queries", hoverinfo="skip"))
    styles = [("star", "#ffd700", 16), ("circle-open", "#1f77b4", 14), ("circle-open", "#d62728", 11),
              ("x-thin-open", "black", 18)]
    for n, (name, xy) in enumerate(hl.items()):
        sym, col, size = styles[n] if n < len(styles) else ("circle-open", "black", 10)
        fig.add_trace(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", hoverinfo="skip",
                                   marker=dict(symbol=sym, color=col, size=size,
                                               line=dict(width=2, color=col)), name=name))
    if box is not None:
        fig.update_xaxes(range=[float(box[0][0]), float(box[1][0])])
        fig.update_yaxes(range=[float(box[0][1]), float(box[1][1])])
    fig.update_xaxes(showticklabels=False, title_text=f"{layout.method.upper()} 1")
    fig.update_yaxes(showticklabels=False, title_text=f"{layout.method.upper()} 2")
    return base_layout(fig, title or f"Records before and after fine-tuning ({layout.method.upper()}, "
                   "fitted on the originals)", 640)


def faithfulness_figure(faith: dict[str, Faithfulness]) -> go.Figure:
    """Mean share of kept neighbours per map (``faith[projection]``), before and after the move,
    with the share a random map would give as a dotted line."""
    fig = go.Figure()
    maps = list(faith)
    for when, colour in (("before", "#7f7f7f"), ("after", "#d62728")):
        vals = [getattr(faith[m], f"mean_{when}") for m in maps]
        fig.add_trace(go.Bar(x=[m.upper() for m in maps], y=vals, name=f"{when} the move",
                             marker_color=colour, text=[f"{v:.2f}" for v in vals],
                             textposition="outside"))
    if maps:  # the chance level as a dotted line, named in the legend (a label would hide)
        chance = max(f.chance for f in faith.values())
        fig.add_hline(y=chance, line=dict(color="black", dash="dot"))
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", hoverinfo="skip",
                                 line=dict(color="black", dash="dot"),
                                 name=f"what a random map keeps ≈ {chance:.3f}"))
    k = next(iter(faith.values())).k if faith else 10
    fig.update_yaxes(title_text=f"share of the {k} nearest neighbours kept", range=[0, 1.08])
    fig.update_layout(barmode="group", bargap=0.35)
    return base_layout(fig, f"How faithful each map is for the moved records ({k} nearest neighbours)",
                   380)


def local_view_figure(lv: LocalView, *, record: str, query_labels: list[str],
                      before_labels: list[str], after_labels: list[str]) -> go.Figure:
    """One record's neighbourhood (:class:`~nudge_core.faithfulness.LocalView`) with its move as
    an arrow; hover names every point."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=lv.before_xy[:, 0], y=lv.before_xy[:, 1], mode="markers",
                             marker=dict(symbol="circle-open", size=11, color="#1f77b4",
                                         line=dict(width=2)),
                             name="nearest records before", text=before_labels,
                             hovertemplate="%{text}<extra>before</extra>"))
    fig.add_trace(go.Scatter(x=lv.after_xy[:, 0], y=lv.after_xy[:, 1], mode="markers",
                             marker=dict(symbol="circle", size=7, color="#d62728"),
                             name="nearest records after", text=after_labels,
                             hovertemplate="%{text}<extra>after</extra>"))
    fig.add_trace(go.Scatter(x=lv.queries[:, 0], y=lv.queries[:, 1], mode="markers",
                             marker=dict(symbol="triangle-up", size=11, color="#2ca02c"),
                             name="training queries that pull it", text=query_labels,
                             hovertemplate="%{text}<extra>pulling query</extra>"))
    fig.add_trace(go.Scatter(x=[lv.record_before[0], lv.record_after[0]],
                             y=[lv.record_before[1], lv.record_after[1]], mode="markers+text",
                             marker=dict(symbol=["circle", "diamond"], size=14,
                                         color=["#7f7f7f", "#d62728"]),
                             text=["before", "after"], textposition=["top left", "bottom right"],
                             name=f"the record ({record})", hoverinfo="skip"))
    fig.add_annotation(x=lv.record_after[0], y=lv.record_after[1], ax=lv.record_before[0],
                       ay=lv.record_before[1], xref="x", yref="y", axref="x", ayref="y",
                       showarrow=True, arrowhead=2, arrowsize=1.5, arrowwidth=2.5,
                       arrowcolor="#d62728", text="")
    fig.update_xaxes(title_text="local PCA 1", scaleanchor="y", scaleratio=1)
    fig.update_yaxes(title_text="local PCA 2")
    return base_layout(fig, f"{record}: its move, its pulling queries and its neighbours (PCA of this "
                   f"neighbourhood, {lv.explained:.0%} of its variance)", 520)


def export_figures(result, data_key: str, *,
                   max_points: int = DEFAULT_MAX_POINTS) -> dict[str, go.Figure]:
    """The Movement figures of ``result`` for the Export page's figures HTML: each γ method's PCA
    map (computed here if needed: seconds), its UMAP map if one is already cached, and each
    method's faithfulness chart. Titles name the method and its γ."""
    ds = result.dataset
    labels = RecordLabels(ds)
    counts = pull_counts(ds.queries(result.split.train), ds.n_records)
    figs: dict[str, go.Figure] = {}
    for m in result.methods:
        if registry.get(m).gamma is None:
            continue
        res = result.methods[m]
        jobs = {"pca": layout_for(result, m, "pca", data_key, max_points=max_points)}
        umap = cached_umap(result, m, data_key, max_points)
        if umap is not None:
            jobs["umap"] = umap
        norms = np.linalg.norm(res.embeddings[res.estimator.moved_], axis=1)
        for proj, job in jobs.items():
            lay = job.future.result()
            figs[f"Movement, {label(m)}, {proj.upper()}"] = movement_figure(
                lay, counts, record_labels=labels, arrows=60, shift=res.estimator.shift_,
                after_norms=norms, queries={"test": lay.queries["test"]},
                title=f"{label(m)} (γ = {res.gamma:.3g}): records before and after, {proj.upper()}")
        figs[f"Map faithfulness, {label(m)}"] = faithfulness_figure(
            {p: faithfulness_of(j, result, m) for p, j in jobs.items()})
    return figs


def cached_umap(result, method: str, data_key: str, max_points: int,
                n_epochs: int | None = None) -> Job | None:
    """The finished UMAP job of this map, if the process already has one (never starts one)."""
    rows, emb, queries = map_inputs(result, method)
    job = _JOBS.get(layout_key(data_key, rows, emb, queries, "umap", max_points, n_epochs))
    return job if job is not None and job.done() and job.future.exception() is None else None
