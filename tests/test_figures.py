"""Figures build from engine results and show the engine's numbers."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from explorer_app import figures
from nudge_core import MethodSettings, RunSpec, kmeans_ood_split, paper_split, run_experiment
from nudge_core.exports import ood_rows
from nudge_core.projection import compute_layout, pull_counts
from nudge_core.sensitivity import log_grid, sensitivity_sweep
from synthetic import make_dataset


@pytest.fixture(scope="module")
def result():
    ds = make_dataset(n_records=250, n_queries=160)
    split = kmeans_ood_split(ds, paper_split(ds.labelled_ids, 0), 0)
    return run_experiment(ds, split, RunSpec(methods=("nudge-m", MethodSettings("nudge-n", 0.2))))


def test_gamma_curve(result):
    nudges = ("nudge-m", "nudge-n")
    curves = {m: (result.methods[m].estimator.curve_gammas_, result.methods[m].estimator.curve_objective_)
              for m in nudges}
    chosen = {m: result.methods[m].gamma for m in nudges}
    fig = figures.gamma_curve_figure(curves, chosen, {m: (np.array([0, 0.1]), np.array([0.5, 0.6]))
                                                      for m in nudges}, {"nudge-m": 0.3})
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 4
    assert np.allclose(fig.data[0].y, curves["nudge-m"][1])
    texts = [a.text for a in fig.layout.annotations]
    assert any(f"chosen γ={chosen['nudge-m']:.3g}" == t for t in texts)
    assert any("slider" in (t or "") for t in texts)


def test_metric_figures(result):
    fig = figures.metrics_by_k_figure({m: r.metrics for m, r in result.methods.items()}, "recall")
    assert [t.name for t in fig.data] == ["no fine-tuning", "NUDGE-M", "NUDGE-N"]
    assert fig.data[1].y[2] == result.methods["nudge-m"].metrics["recall@10"]
    comp = {m: r.comparison for m, r in result.methods.items() if m != "none"}
    fig = figures.delta_figure(comp)
    assert list(fig.data[0].y) == [comp["nudge-m"]["ndcg@10"]["delta"], comp["nudge-n"]["ndcg@10"]["delta"]]


def test_per_query_scatter_counts(result):
    before = result.methods["none"].per_query["ndcg@10"]
    after = result.methods["nudge-n"].per_query["ndcg@10"]
    fig = figures.per_query_scatter(before, after, result.test.ids, "nudge-n")
    c = result.methods["nudge-n"].comparison["ndcg@10"]
    names = [t.name for t in fig.data[:3]]
    assert names == [f"wins ({c['wins']})", f"losses ({c['losses']})", f"ties ({c['ties']})"]
    assert sum(len(t.x) for t in fig.data[:3]) == len(result.test)


def test_ood_and_sensitivity_figures(result):
    rows = ood_rows(result)
    fig = figures.ood_figure(rows)
    assert [t.name for t in fig.data] == ["in-distribution", "OOD"]
    sw = sensitivity_sweep(result.dataset, [result.split], result.spec,
                           grids={"nudge-m": log_grid("nudge-m", 6), "nudge-n": log_grid("nudge-n", 6)})
    fig = figures.sensitivity_figure(sw, "nudge-n")
    assert fig.layout.xaxis.type == "log"
    assert {t.name for t in fig.data if t.name} == {"train", "validation", "test", "OOD"}


def _nudge_n_layout(result):
    """NUDGE-N's estimator, its PCA movement layout with the test queries, and pull counts."""
    est = result.methods["nudge-n"].estimator
    ds = result.dataset
    lay = compute_layout(ds.corpus_emb, est.moved_, result.methods["nudge-n"].embeddings[est.moved_],
                         {"test": result.test.emb}, method="pca")
    return est, lay, pull_counts(ds.queries(result.split.train), ds.n_records)


def test_movement_figure_and_html(result):
    est, lay, counts = _nudge_n_layout(result)
    fig = figures.movement_figure(lay, counts, arrows=5, shift=est.shift_, queries=lay.queries,
                                  highlight={"relevant records": lay.xy[:2]})
    assert all(isinstance(t, go.Scattergl) for t in fig.data)
    assert len(fig.layout.annotations) == min(5, len(est.moved_))
    html = figures.figures_html({"a": fig, "b": figures.ood_figure(ood_rows(result))})
    assert html.startswith(b"<!DOCTYPE html>") and html.count(b"<h2>") == 2


def test_movement_figure_zooms_on_a_picked_query(result):
    est, lay, counts = _nudge_n_layout(result)
    pts = lay.xy[:3]
    fig = figures.movement_figure(lay, counts, arrows=len(est.moved_), shift=est.shift_,
                                  highlight={"relevant records": pts, "this query": lay.queries["test"][:1]})
    lo = np.minimum(pts.min(axis=0), lay.queries["test"][0])
    x0, x1 = fig.layout.xaxis.range
    assert x0 < lo[0] and x1 > pts[:, 0].max()
    for a in fig.layout.annotations:  # arrowheads stay inside the zoomed view
        assert x0 <= a.x <= x1 and x0 <= a.ax <= x1
