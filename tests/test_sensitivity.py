"""γ re-scoring without refits (the slider) and the sensitivity sweep."""

from __future__ import annotations

import numpy as np
import pytest

from nudge_core import NudgeM, NudgeN, RunSpec, kmeans_ood_split, paper_split, run_experiment
from nudge_core.metrics import evaluate, mean_metrics
from nudge_core.runspec import MethodSettings
from nudge_core.retrieval import search
from nudge_core.sensitivity import GammaRescorer, log_grid, sensitivity_sweep
from synthetic import make_dataset


SPEC = RunSpec(methods=("nudge-m", "nudge-n"))


@pytest.fixture(scope="module")
def setup():
    ds = make_dataset(n_records=300, n_queries=160)
    split = kmeans_ood_split(ds, paper_split(ds.labelled_ids, 0), 0)
    result = run_experiment(ds, split, SPEC)
    return ds, split, result


@pytest.mark.parametrize("method", ["nudge-m", "nudge-n"])
def test_rescorer_at_chosen_gamma_equals_experiment(setup, method):
    ds, split, result = setup
    res = result.methods[method]
    rs = GammaRescorer(res.estimator, {"test": result.test, "ood": result.ood})
    for part, expected in (("test", res.metrics), ("ood", res.ood_metrics)):
        got = rs.metrics(res.gamma, part)
        assert got.keys() == expected.keys()
        assert max(abs(got[k] - expected[k]) for k in got) < 1e-12


@pytest.mark.parametrize("method,gamma", [("nudge-m", 0.05), ("nudge-m", 2.0), ("nudge-n", 0.3),
                                          ("nudge-n", 1.5)])
def test_rescorer_equals_refit_at_other_gamma(setup, method, gamma):
    ds, split, result = setup
    rs = GammaRescorer(result.methods[method].estimator, {"test": result.test})
    train, val = ds.queries(split.train), ds.queries(split.val)
    est = (NudgeM(gamma) if method == "nudge-m" else NudgeN(gamma)).fit(ds.corpus_emb, train, val)
    refit = mean_metrics(evaluate(search(result.test.emb, est.embeddings_, 40)[1], result.test))
    got = rs.metrics(gamma)
    assert max(abs(got[k] - refit[k]) for k in got) < 1e-9


def test_rescorer_curve_and_timing(setup):
    _, _, result = setup
    rs = GammaRescorer(result.methods["nudge-n"].estimator, {"test": result.test})
    curve = rs.curve([0.0, 0.1, 0.2])
    assert curve.shape == (3,)
    assert curve[0] == pytest.approx(result.methods["none"].metrics["ndcg@10"])
    metrics, seconds = rs.timed_metrics(0.1)
    assert seconds >= 0 and metrics == rs.metrics(0.1)


def test_log_grid():
    g = log_grid("nudge-m", 10)
    assert g[0] == pytest.approx(1e-3) and g[-1] == pytest.approx(10) and np.all(np.diff(g) > 0)
    assert log_grid("nudge-n", 5)[-1] == pytest.approx(4)


def test_sweep_parts_seeds_and_markers(setup):
    ds, split, result = setup
    splits = [kmeans_ood_split(ds, paper_split(ds.labelled_ids, s), s) for s in (0, 1)]
    sw = sensitivity_sweep(ds, splits, SPEC, grids={"nudge-m": log_grid("nudge-m", 8),
                                              "nudge-n": log_grid("nudge-n", 8)})
    for m in ("nudge-m", "nudge-n"):
        assert set(sw.values[m]) == {"train", "val", "test", "ood"}
        assert sw.values[m]["test"].shape == (2, 8)
        lo, hi = sw.band(m, "test")
        assert np.all(lo <= hi)
        marks = sw.markers(m)
        assert marks["val_peak"] in sw.gammas[m] and marks["test_peak"] in sw.gammas[m]
        assert len(sw.chosen[m]) == 2
    # the sweep's first split at the chosen γ-free grid point agrees with a refit at that γ
    g = float(sw.gammas["nudge-n"][3])
    train, val = ds.queries(splits[0].train), ds.queries(splits[0].val)
    est = NudgeN(g).fit(ds.corpus_emb, train, val)
    test = ds.queries(splits[0].test)
    refit = mean_metrics(evaluate(search(test.emb, est.embeddings_, 40)[1], test))["ndcg@10"]
    assert sw.values["nudge-n"]["test"][0, 3] == pytest.approx(refit, abs=1e-9)
    assert "methods" in sw.to_json()


def test_sweep_with_given_ood_and_errors(setup):
    ds, split, result = setup
    plain = paper_split(ds.labelled_ids, 0)
    sw = sensitivity_sweep(ds, [plain], RunSpec(methods=("nudge-m",)), ood=ds.queries(plain.test[:5]),
                           grids={"nudge-m": [0.01, 0.1]}, with_chosen=False)
    assert sw.values["nudge-m"]["ood"].shape == (1, 2) and sw.chosen == {}
    with pytest.raises(ValueError, match="must include a method with a γ"):
        sensitivity_sweep(ds, [plain], RunSpec(methods=("adaptor",)))
    with pytest.raises(ValueError, match="at least one split"):
        sensitivity_sweep(ds, [], SPEC)


def test_sweep_marks_the_users_own_settings(setup):
    """The chosen γ is the one the user's settings pick (fixed γ, their grid, their val_k)."""
    ds, split, _ = setup
    spec = RunSpec(methods=(MethodSettings("nudge-m", 0.02),
                            MethodSettings("nudge-n", "0:0.1:0.005", {"val_k": 3})))
    sw = sensitivity_sweep(ds, [split], spec, grids={"nudge-m": [0.1], "nudge-n": [0.1]})
    assert sw.chosen["nudge-m"] == [0.02]
    train, val = ds.queries(split.train), ds.queries(split.val)
    own = NudgeN(gammas=spec.method("nudge-n").gamma.grid(), val_k=3).fit(ds.corpus_emb, train, val)
    assert sw.chosen["nudge-n"] == [own.gamma_]
    assert 0 <= own.gamma_ <= 0.1


def test_markers_detect_overfitting():
    from nudge_core.sensitivity import SweepResult

    g = np.array([0.01, 0.1, 1.0, 10.0])
    sw = SweepResult("ndcg@10", {"nudge-m": g},
                     {"nudge-m": {"train": np.array([[0.5, 0.7, 0.9, 0.95]]),
                                  "val": np.array([[0.4, 0.6, 0.55, 0.3]]),
                                  "test": np.array([[0.4, 0.6, 0.58, 0.3]])}})
    assert sw.markers("nudge-m") == {"val_peak": 0.1, "test_peak": 0.1, "overfit": 1.0}


@pytest.mark.slow
def test_slider_rescore_at_scifact_size_equals_the_fit(scifact):
    """The γ slider's re-score on SciFact equals the fitted run at the chosen γ (its speed is
    measured in benchmarks/, not asserted here)."""
    split = paper_split(scifact.labelled_ids, 0)
    result = run_experiment(scifact, split, SPEC)
    for method in ("nudge-m", "nudge-n"):
        rs = GammaRescorer(result.methods[method].estimator, {"test": result.test})
        assert rs.metrics(result.methods[method].gamma) == result.methods[method].metrics


def test_sweep_keeps_each_seeds_chosen_fit_metrics(setup):
    """The per-seed table's numbers: on the run's own split, the sweep's fit at the chosen γ scores
    what the experiment scored, and its "before" is no fine-tuning."""
    ds, split, result = setup
    other = kmeans_ood_split(ds, paper_split(ds.labelled_ids, 1), 1)
    sw = sensitivity_sweep(ds, [split, other], SPEC, grids={"nudge-m": log_grid("nudge-m", 5),
                                                            "nudge-n": log_grid("nudge-n", 5)})
    for m in ("nudge-m", "nudge-n"):
        assert len(sw.chosen_metrics[m]) == 2
        kept = sw.chosen_metrics[m][0]
        assert set(kept) == {"test", "test before", "ood", "ood before"}
        for part, res_metrics, ref_metrics in (
                ("test", result.methods[m].metrics, result.methods["none"].metrics),
                ("ood", result.methods[m].ood_metrics, result.methods["none"].ood_metrics)):
            for metric, value in kept[part].items():
                assert value == pytest.approx(res_metrics[metric], abs=1e-12)
                assert kept[f"{part} before"][metric] == pytest.approx(ref_metrics[metric], abs=1e-12)
        assert sw.chosen[m][0] == pytest.approx(result.methods[m].gamma)
    assert sw.to_json()["methods"]["nudge-n"]["chosen_metrics"] == sw.chosen_metrics["nudge-n"]
