"""The serving evaluation (every method of a run through serving indexes), NUDGE-M raw vs
re-normalised rankings, and γ chosen through a served index."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic import make_dataset

from nudge_core import registry, run_experiment
from nudge_core.data import dataset_from_arrays
from nudge_core.errors import SpecError
from nudge_core.runspec import MethodSettings, RunSpec
from nudge_core.serving import IndexSpec, evaluate_serving, gamma_under_index, validation_curve
from nudge_core.splits import Split, paper_split


@pytest.fixture(scope="module")
def result():
    ds = make_dataset(n_records=300, dim=16, n_queries=150, seed=3)
    split = paper_split(ds.labelled_ids, seed=0)
    return run_experiment(ds, split, RunSpec(methods=("none", "adaptor", "nudge-m", "nudge-n")))


def test_serving_evaluation_reports_every_method_under_every_spec(result):
    specs = ["exact", "int8", "binary:rescore=40", "hnsw:M=8,ef=300", "ivf:nlist=4,nprobe=4",
             "truncate:dim=8", "ivfpq:nlist=4,m=4,bits=4,nprobe=2"]
    out = evaluate_serving(result, specs, repeats=1, latency_queries=3)
    json.dumps(out, allow_nan=False)  # plain JSON
    assert list(out) == specs
    for text, entry in out.items():
        assert set(entry) == {"spec", "build_seconds", "bytes_per_record", "query_ms", "latency_ms",
                              "methods"}
        assert entry["bytes_per_record"] > 0 and entry["query_ms"] > 0 and entry["latency_ms"] > 0
        assert list(entry["methods"]) == list(result.methods)
        ref = entry["methods"][registry.REFERENCE]
        assert ref["gain_kept"] == 0 and ref["exact_gain"] == 0 and ref["kept_share"] is None
        for name, m in entry["methods"].items():
            exact_gain = (result.methods[name].metrics["ndcg@10"]
                          - result.methods[registry.REFERENCE].metrics["ndcg@10"])
            assert m["exact_gain"] == pytest.approx(exact_gain)
            assert m["gain_kept"] == pytest.approx(m["metrics"]["ndcg@10"] - ref["metrics"]["ndcg@10"])
            if name != registry.REFERENCE and exact_gain:
                assert m["kept_share"] == pytest.approx(m["gain_kept"] / exact_gain)
            assert ("renormalized" in m) == (name == "nudge-m")
    sizes = {t: out[t]["bytes_per_record"] for t in specs}
    assert sizes["exact"] == 4 * 16 and sizes["truncate:dim=8"] == 4 * 8
    assert sizes["binary:rescore=40"] < sizes["int8"] < sizes["exact"] < sizes["hnsw:M=8,ef=300"]


def test_exact_settings_give_the_runs_own_metrics(result):
    out = evaluate_serving(result, ["exact", "ivf:nlist=4,nprobe=4", "truncate:dim=16"],
                           time_it=False)
    for entry in out.values():
        assert "query_ms" not in entry
        for name, m in entry["methods"].items():
            assert m["metrics"] == pytest.approx(result.methods[name].metrics, abs=1e-9)
            assert m["gain_kept"] == pytest.approx(m["exact_gain"])
            assert m["overlap"] == 1.0
        assert entry["methods"]["nudge-m"]["renormalized"]["gain_kept"] == \
            pytest.approx(entry["methods"]["nudge-m"]["renormalized"]["exact_gain"])


def test_ood_queries_are_evaluated_when_the_run_has_them():
    from nudge_core.splits import kmeans_ood_split

    ds = make_dataset(n_records=200, dim=12, n_queries=200, seed=5)
    split = kmeans_ood_split(ds, paper_split(ds.labelled_ids, seed=1), seed=1)
    res = run_experiment(ds, split, RunSpec(methods=("none", "nudge-n")))
    out = evaluate_serving(res, ["int8"], time_it=False, tune=True)
    ood = out["int8"]["methods"]["nudge-n"]["ood"]
    assert set(ood) == {"metrics", "gain_kept", "exact_gain", "kept_share"}
    tuned = out["int8"]["methods"]["nudge-n"]["tuned"]["ood"]  # γ chosen through int8, OOD side
    assert set(tuned) == {"metrics", "gain_kept", "delta", "vs_float"}
    assert tuned["delta"] == pytest.approx(tuned["metrics"]["ndcg@10"] - ood["metrics"]["ndcg@10"])
    assert tuned["vs_float"]["ndcg@10"]["n"] == len(res.ood)
    assert ood["exact_gain"] == pytest.approx(res.methods["nudge-n"].ood_metrics["ndcg@10"]
                                              - res.methods["none"].ood_metrics["ndcg@10"])


def test_bad_specs_are_refused_before_any_index_is_built(result, monkeypatch):
    built = []
    monkeypatch.setattr(IndexSpec, "build", lambda self, *a, **k: built.append(self.text))
    with pytest.raises(SpecError, match="index spec 'truncate:dim=17': dim=17 exceeds the records' 16"):
        evaluate_serving(result, ["int8", "truncate:dim=17"])
    with pytest.raises(SpecError, match="unknown index 'pq'"):
        evaluate_serving(result, ["int8", "pq"])
    with pytest.raises(ValueError, match="metric 'ndcg@11' is not reported"):
        evaluate_serving(result, ["int8"], metric="ndcg@11")
    assert built == []


def _two_record_case():
    """Record a = (1, 0) and b = (0.8, 0.6); training and validation queries ask for b from
    (0, 1), so NUDGE-M moves b by γ = 2 toward (0, 1): e_b = (0.8, 2.6), norm 2.72. The test query
    q = (1, 0.1) judges a relevant. By inner product e_b wins (0.8 + 0.26 = 1.06 > 1); re-normalised,
    e_b = (0.29, 0.96) scores 0.39 and a wins."""
    corpus = np.array([[1, 0], [0.8, 0.6], [-1, 0], [0, -1]], dtype=np.float32)
    queries = np.array([[0, 1], [0.05, 1], [1, 0.1]], dtype=np.float32)
    qrels = {"t": {"d1": 1}, "v": {"d1": 1}, "x": {"d0": 1}}
    ds = dataset_from_arrays(corpus, queries, qrels, corpus_ids=["d0", "d1", "d2", "d3"],
                             query_ids=["t", "v", "x"])
    spec = RunSpec(methods=("none", MethodSettings("nudge-m", 2.0)))
    return run_experiment(ds, Split(["t"], ["v"], ["x"]), spec)


def test_nudge_m_raw_ranking_differs_from_renormalised_on_a_constructed_case():
    res = _two_record_case()
    e = res.methods["nudge-m"].embeddings
    np.testing.assert_allclose(e[1], [0.8, 2.6], atol=1e-6)
    out = evaluate_serving(res, ["exact", "hnsw:M=2,ef=4", "int8:rescore=4"], time_it=False)
    for text in ("exact", "hnsw:M=2,ef=4", "int8:rescore=4"):
        m = out[text]["methods"]["nudge-m"]
        assert m["rankings_differ"] and m["changed_queries"] == 1.0, text
        assert m["metrics"]["hit@1"] == 0.0, text                    # raw: b first
        assert m["renormalized"]["metrics"]["hit@1"] == 1.0, text    # cosine: a first
    assert "renormalized" not in out["exact"]["methods"]["none"]


def test_binary_codes_ignore_record_norms_so_both_ways_agree():
    out = evaluate_serving(_two_record_case(), ["binary"], time_it=False)
    m = out["binary"]["methods"]["nudge-m"]
    assert not m["rankings_differ"] and m["changed_queries"] == 0.0


def test_gamma_under_index_evaluates_the_validation_objective_through_the_index(result):
    est = result.methods["nudge-n"].estimator
    val = result.dataset.queries(result.split.val)
    # through an exact index the curve is the estimator's own validation curve
    gammas, values = validation_curve(est, val, "exact", est.curve_gammas_)
    np.testing.assert_allclose(values, est.curve_objective_, atol=1e-12)
    # NUDGE-M: between breakpoints (at one, records tie and the order is arbitrary)
    m_est = result.methods["nudge-m"].estimator
    curve = m_est.gamma_curve_
    breaks = np.append(curve[:, 0], curve[-1, 0] + 1)
    grid = (breaks[:-1] + breaks[1:]) / 2
    _, m_values = validation_curve(m_est, val, "exact", grid)
    want = curve[:, 1]
    np.testing.assert_allclose(m_values, want, atol=1e-12)

    out = gamma_under_index(result, "nudge-n", "binary", gammas=[0.0, 0.1, 0.2])
    json.dumps(out, allow_nan=False)
    assert out["gammas"] == [0.0, 0.1, 0.2] and len(out["objective"]) == 3
    best = max(out["objective"])
    assert out["objective"][out["gammas"].index(out["gamma_index"])] == best
    if est.gamma_ in out["gammas"] and out["objective"][out["gammas"].index(est.gamma_)] == best:
        assert out["gamma_index"] == est.gamma_  # ties keep the float32 choice
    assert out["gain"] == pytest.approx(out["test"]["gamma_index"]["ndcg@10"]
                                        - out["test"]["gamma_float"]["ndcg@10"])
    same = gamma_under_index(result, "nudge-m", "exact")  # default grid includes the fitted γ
    assert est.gamma_ is not None and m_est.gamma_ in same["gammas"]
    assert same["test"]["gamma_float"] == pytest.approx(result.methods["nudge-m"].metrics)
    with pytest.raises(ValueError, match="needs a fitted NUDGE estimator"):
        validation_curve(result.methods["none"].estimator, val, "exact")


def _compression_moves_the_best_gamma():
    """3-d records a = (1, 0, 0), b = (0.48, 0.36, 0.8); the training query (1, 0, 0) asks for b,
    so NUDGE-M moves b along x: e_b = (0.48 + γ, 0.36, 0.8). The validation query v = (0.6, 0, 0.8)
    asks for b too. In float32, v·b = 0.928 > v·a = 0.6 already at γ = 0: NUDGE-M picks γ = 0.
    ``truncate:dim=2`` keeps (x, y) stretched to the full row's norm and cuts v to (0.6, 0): at
    γ = 0 b becomes (0.8, 0.6), scoring 0.48 < 0.6, so validation fails; only γ above about 0.2
    (b's stretched x past 1) lets b win through that index."""
    corpus = np.array([[1, 0, 0], [0.48, 0.36, 0.8], [-1, 0, 0], [0, -1, 0]], dtype=np.float32)
    queries = np.array([[1, 0, 0], [0.6, 0, 0.8], [1, 0, 0.1]], dtype=np.float32)
    qrels = {"t": {"d1": 1}, "v": {"d1": 1}, "x": {"d0": 1}}
    ds = dataset_from_arrays(corpus, queries, qrels, corpus_ids=["d0", "d1", "d2", "d3"],
                             query_ids=["t", "v", "x"])
    return run_experiment(ds, Split(["t"], ["v"], ["x"]), RunSpec(methods=("none", "nudge-m")))


def test_tuning_for_the_index_changes_gamma_only_where_compression_moves_the_best():
    res = _compression_moves_the_best_gamma()
    assert res.methods["nudge-m"].gamma == 0.0
    out = evaluate_serving(res, ["exact", "truncate:dim=2"], time_it=False, tune=True)
    json.dumps(out, allow_nan=False)
    exact = out["exact"]["methods"]["nudge-m"]["tuned"]
    assert exact["gamma_index"] == exact["gamma_float"] == 0.0 and not exact["changed"]
    assert exact["delta"] == 0.0 and exact["metrics"] == out["exact"]["methods"]["nudge-m"]["metrics"]
    cut = out["truncate:dim=2"]["methods"]["nudge-m"]["tuned"]
    assert cut["changed"] and cut["gamma_index"] > 0.0 == cut["gamma_float"]
    assert cut["validation"] == {"gamma_float": 0.0, "gamma_index": 1.0}  # hit@1 of query v
    assert cut["objective"] == "hit@1"
    # the smallest candidate that wins: every smaller candidate scores 0 through the index
    curve = dict(zip(cut["curve"]["gammas"], cut["curve"]["values"]))
    assert all(v == 0.0 for g, v in curve.items() if g < cut["gamma_index"])
    # the engine's own check, index built independently: the chosen records rank b first for v
    est = res.methods["nudge-m"].estimator
    val = res.dataset.queries(res.split.val)
    _, values = validation_curve(est, val, "truncate:dim=2", [0.0, cut["gamma_index"]])
    assert values.tolist() == [0.0, 1.0]
    direct = gamma_under_index(res, "nudge-m", "truncate:dim=2")
    assert direct["gamma_index"] == cut["gamma_index"]
    assert direct["test"]["gamma_index"] == pytest.approx(cut["metrics"])
    assert cut["delta"] == pytest.approx(cut["metrics"]["ndcg@10"] - out["truncate:dim=2"][
        "methods"]["nudge-m"]["metrics"]["ndcg@10"])
    assert set(cut["vs_float"]) == {"ndcg@10", "recall@10", "mrr@10"}
    assert cut["vs_float"]["ndcg@10"]["delta"] == pytest.approx(cut["delta"])
    assert "tuned" not in out["exact"]["methods"]["none"]


def test_tuning_keeps_the_float32_choice_through_exact_search_and_skips_fixed_gammas(result):
    out = evaluate_serving(result, ["exact", "int8"], time_it=False, tune=True)
    for name in registry.gamma_methods():
        if name not in result.methods:
            continue
        tuned = out["exact"]["methods"][name]["tuned"]
        assert tuned["gamma_index"] == tuned["gamma_float"] == result.methods[name].gamma, name
        assert tuned["validation"]["gamma_index"] == max(tuned["curve"]["values"])
        int8 = out["int8"]["methods"][name]["tuned"]
        assert int8["validation"]["gamma_index"] >= int8["validation"]["gamma_float"]
        assert int8["gain_kept"] == pytest.approx(
            int8["metrics"]["ndcg@10"] - out["int8"]["methods"]["none"]["metrics"]["ndcg@10"])
    assert all("tuned" not in m for e in evaluate_serving(result, ["int8"], time_it=False).values()
               for m in e["methods"].values())
    fixed = _two_record_case()  # NUDGE-M with a fixed γ: nothing was chosen, nothing to compare
    assert "tuned" not in evaluate_serving(fixed, ["int8"], time_it=False, tune=True)["int8"][
        "methods"]["nudge-m"]
