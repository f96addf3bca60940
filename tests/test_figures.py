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
    assert any(f"chosen γ={chosen['nudge-m']:.4g}" == t for t in texts)
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
    curves = {t.name for t in fig.data if t.name and t.x[0] is not None}
    assert curves == {"train", "validation", "test", "OOD"}


def _nudge_n_layout(result):
    """NUDGE-N's estimator, its PCA movement layout with the test queries, and pull counts."""
    est = result.methods["nudge-n"].estimator
    ds = result.dataset
    lay = compute_layout(ds.corpus_emb, est.moved_, result.methods["nudge-n"].embeddings[est.moved_],
                         {"test": result.test.emb}, method="pca")
    return est, lay, pull_counts(ds.queries(result.split.train), ds.n_records)


def test_sensitivity_peak_marks_are_named_in_the_legend_not_over_the_curves(result):
    """Peak labels used to sit inside the plot area, over the curves; they are legend entries
    now (with their γ), and no annotation is drawn inside the plot."""
    sw = sensitivity_sweep(result.dataset, [result.split], result.spec,
                           grids={"nudge-m": log_grid("nudge-m", 8), "nudge-n": log_grid("nudge-n", 8)})
    for method in ("nudge-m", "nudge-n"):
        fig = figures.sensitivity_figure(sw, method)
        marks = sw.markers(method)
        inside = [a for a in fig.layout.annotations if a.yref == "paper" and 0 <= a.y <= 1]
        assert inside == []
        names = [t.name for t in fig.data]
        assert f"validation peak (γ ≈ {marks['val_peak']:.3g})" in names
        assert f"test peak: gains stop (γ ≈ {marks['test_peak']:.3g})" in names
        assert any(n.startswith("γ your settings choose") for n in names)


def test_export_figures_add_the_sweep_when_there_is_one(result):
    sw = sensitivity_sweep(result.dataset, [result.split], result.spec,
                           grids={"nudge-m": log_grid("nudge-m", 5), "nudge-n": log_grid("nudge-n", 5)})
    without = figures.export_figures(result)
    assert not [k for k in without if k.startswith("Sensitivity")] and "OOD" in without
    extra = go.Figure()
    figs = figures.export_figures(result, sweep=sw, movement={"Movement: NUDGE-N": extra})
    assert {"Sensitivity: NUDGE-M", "Sensitivity: NUDGE-N"} <= set(figs)
    assert figs["Movement: NUDGE-N"] is extra
    html = figures.figures_html(figs).decode()
    assert "<h2>Sensitivity: NUDGE-N</h2>" in html and html.count("<h2>") == len(figs)


def test_figures_html_escapes_headings_and_title():
    """Headings carry record texts (the Movement page's "Record <id>: <text>"), the title a
    dataset name: markup in them stays text in the downloaded file."""
    page = figures.figures_html({"Record r1: <img src=x onerror=alert(1)>": go.Figure()},
                                "NUDGE Explorer: <b>data</b>").decode()
    assert "<img src=x" not in page and "<b>data</b>" not in page
    assert "<h2>Record r1: &lt;img src=x onerror=alert(1)&gt;</h2>" in page
    assert "<title>NUDGE Explorer: &lt;b&gt;data&lt;/b&gt;</title>" in page
