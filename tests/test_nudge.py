"""NUDGE-M / NUDGE-N: properties, exactness of the fast paths, and agreement with nudge-ft."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nudge_core import reference
from nudge_core.data import QuerySet
from nudge_core.errors import DataError
from nudge_core.metrics import evaluate, recall_at_k
from nudge_core.nudge import NudgeM, NudgeN
from nudge_core.retrieval import normalize_rows, search
from nudge_core.splits import paper_split
from optional import needs
from synthetic import make_dataset


def split_sets(ds, seed=0):
    sp = paper_split(ds.labelled_ids, seed=seed)
    return ds.queries(sp.train), ds.queries(sp.val), ds.queries(sp.test)


@pytest.fixture(scope="module")
def toy():
    ds = make_dataset(n_records=300, dim=16, n_queries=150, seed=1)
    return ds, *split_sets(ds)


def run_reference(cls, X, tr, va, **kw):
    """nudge-ft's output embeddings for our NudgeM / NudgeN class ``cls``."""
    return reference.run_reference(cls.unit_norm, X, tr, va, **kw)[0]


# ---------------------------------------------------------------- properties

def test_nudge_n_unit_norm_and_bounded_change(toy):
    ds, tr, va, _ = toy
    for gamma in (None, 0.02, 0.3, 1.0, 3.9):
        est = NudgeN(gamma=gamma).fit(ds.corpus_emb, tr, va)
        v = normalize_rows(ds.corpus_emb)
        assert np.allclose(np.linalg.norm(est.embeddings_, axis=1), 1, atol=1e-5)
        change = ((est.embeddings_ - v) ** 2).sum(axis=1)
        assert change.max() <= est.gamma_ + 1e-5


def test_nudge_m_moves_every_pulled_record_by_exactly_gamma(toy):
    ds, tr, va, _ = toy
    est = NudgeM(gamma=0.37).fit(ds.corpus_emb, tr, va)
    v = normalize_rows(ds.corpus_emb)
    pulled = np.unique(np.concatenate(tr.answers))
    assert set(est.moved_.tolist()) == set(pulled.tolist())
    assert np.allclose(np.linalg.norm(est.embeddings_[pulled] - v[pulled], axis=1), 0.37, atol=1e-6)
    assert np.allclose(est.shift_, 0.37, atol=1e-6)


@pytest.mark.parametrize("cls", [NudgeM, NudgeN])
def test_records_no_training_query_pulls_stay_fixed(toy, cls):
    ds, tr, va, _ = toy
    est = cls().fit(ds.corpus_emb, tr, va)
    v = normalize_rows(ds.corpus_emb)
    unpulled = np.setdiff1d(np.arange(ds.n_records), np.concatenate(tr.answers))
    assert np.array_equal(est.embeddings_[unpulled], v[unpulled])
    assert not set(est.moved_.tolist()) & set(unpulled.tolist())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), gamma=st.floats(0, 4), dim=st.integers(2, 12))
def test_nudge_n_property_any_input(seed, gamma, dim):
    """For any records and pulls: unit norm, ||e - v||² <= γ, no NaN (b clamped at 0)."""
    from nudge_core.gamma_path import GammaPath

    rng = np.random.default_rng(seed)
    v = normalize_rows(rng.standard_normal((20, dim)).astype(np.float32))
    c = rng.standard_normal((20, dim)).astype(np.float32) * rng.uniform(0, 5)
    c[0] = 0                      # never pulled
    c[1] = 3 * v[1]               # pull parallel to the record: b = 0 (reference can emit NaN)
    c[2] = -v[2]                  # pull pointing away
    e = GammaPath(True, v, c).embed(gamma)
    assert np.isfinite(e).all()
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    assert (((e - v) ** 2).sum(axis=1) <= gamma + 1e-5).all()
    assert np.array_equal(e[0], v[0])


# ---------------------------------------------------------------- exactness of the fast paths

def full_index_at(est, X, gamma):
    """The whole corpus at γ, built naively (every record, no active-set shortcut)."""
    full = normalize_rows(X)
    act = est.active_
    full[act.rows] = est.path_.embed(gamma)
    return full


def test_nudge_n_grid_objective_equals_brute_force(toy):
    ds, tr, va, _ = toy
    for val_k in (1, 3):
        est = NudgeN(val_k=val_k).fit(ds.corpus_emb, tr, va)
        for gamma, objective in est.gamma_curve_:
            _, rows = search(va.emb, full_index_at(est, ds.corpus_emb, gamma), val_k)
            n_relevant = np.array([len(a) for a in va.answers])
            recall = recall_at_k(va.relevance.gains(rows), n_relevant, val_k)
            assert recall.mean() == pytest.approx(objective, abs=1e-12)


def test_nudge_m_sweep_curve_equals_brute_force(toy):
    ds, tr, va, _ = toy
    est = NudgeM().fit(ds.corpus_emb, tr, va)
    gammas = est.curve_gammas_
    probes = np.concatenate([(gammas[:-1] + gammas[1:]) / 2, [gammas[-1] * 1.5 + 0.1]])[:60]
    for g in probes:
        _, rows = search(va.emb, full_index_at(est, ds.corpus_emb, g), 1)
        top1 = np.mean([rows[j, 0] in va.answers[j] for j in range(len(va))])
        i = np.searchsorted(gammas, g, side="right") - 1
        assert top1 == pytest.approx(est.curve_objective_[i], abs=1e-12), g
    # and the chosen γ is the smallest point of the best count
    best = est.curve_objective_.max()
    assert est.gamma_ == gammas[np.argmax(est.curve_objective_ == best)]
    assert est.objective_ == best


@pytest.mark.parametrize("cls", [NudgeM, NudgeN])
def test_scorer_topk_equals_full_search_at_any_gamma(toy, cls):
    ds, tr, va, te = toy
    est = cls().fit(ds.corpus_emb, tr, va)
    scorer = est.scorer(te.emb, k=40)
    for g in (0.0, 0.01, 0.1, 0.5, 1.7):
        _, rows = search(te.emb, full_index_at(est, ds.corpus_emb, g), 10)
        assert np.array_equal(scorer.topk(g, 10), rows)


def test_memory_mapped_input_gives_identical_output(toy, tmp_path):
    ds, tr, va, _ = toy
    np.save(tmp_path / "c.npy", np.asarray(ds.corpus_emb))
    mm = np.load(tmp_path / "c.npy", mmap_mode="r")
    for cls in (NudgeM, NudgeN):
        a = cls().fit(ds.corpus_emb, tr, va)
        b = cls().fit(mm, tr, va)
        assert a.gamma_ == b.gamma_
        assert np.array_equal(a.embeddings_, b.embeddings_)


def test_small_blocks_give_identical_output(toy, monkeypatch):
    import nudge_core.retrieval as retrieval

    ds, tr, va, _ = toy
    a = NudgeN().fit(ds.corpus_emb, tr, va)
    monkeypatch.setattr(retrieval.search, "__defaults__", (None, 7, False))
    monkeypatch.setattr(retrieval.normalize_rows, "__defaults__", (None, 7))
    b = NudgeN().fit(ds.corpus_emb, tr, va)
    assert a.gamma_ == b.gamma_
    assert np.allclose(a.embeddings_, b.embeddings_, atol=1e-7)


# ---------------------------------------------------------------- input checks

def test_validation_query_without_relevant_record_is_refused(toy):
    ds, tr, va, _ = toy
    bad = QuerySet(va.ids, va.emb, [np.zeros(0, np.int64)] + va.answers[1:], va.grades)
    with pytest.raises(DataError, match="no relevant record"):
        NudgeN().fit(ds.corpus_emb, tr, bad)


@pytest.mark.parametrize("kwargs, match", [({"gamma": -0.1}, ">= 0"), ({"gamma": float("nan")}, ">= 0")])
def test_bad_gamma_m(toy, kwargs, match):
    ds, tr, va, _ = toy
    with pytest.raises(ValueError, match=match):
        NudgeM(**kwargs).fit(ds.corpus_emb, tr, va)


@pytest.mark.parametrize("kwargs, match", [({"gamma": 4.5}, r"\[0, 4\]"), ({"val_k": 0}, "val_k"),
                                           ({"gammas": []}, "empty")])
def test_bad_settings_n(toy, kwargs, match):
    ds, tr, va, _ = toy
    with pytest.raises(ValueError, match=match):
        NudgeN(**kwargs).fit(ds.corpus_emb, tr, va)


# ---------------------------------------------------------------- against the reference

@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_reference_on_synthetic(seed):
    needs("nudge")

    ds = make_dataset(n_records=400, dim=24, n_queries=200, seed=seed)
    tr, va, _ = split_sets(ds, seed)
    X = np.asarray(ds.corpus_emb)
    ours_m = NudgeM().fit(X, tr, va)
    ref_m = run_reference(NudgeM, X, tr, va)
    pulled = int(tr.answers[0][0])
    ref_gamma = np.linalg.norm(ref_m[pulled] - normalize_rows(X[pulled:pulled + 1])[0])
    assert ours_m.gamma_ == pytest.approx(ref_gamma, abs=1e-6)
    assert np.abs(ours_m.embeddings_ - ref_m).max() < 1e-5
    for val_k in (1, 5):
        ours_n = NudgeN(val_k=val_k).fit(X, tr, va)
        ref_n = run_reference(NudgeN, X, tr, va, val_k=val_k)
        assert np.abs(ours_n.embeddings_ - ref_n).max() < 1e-5


@pytest.mark.parametrize("gamma", [0.05, 0.3, 1.2])
def test_fixed_gamma_matches_reference(toy, gamma):
    needs("nudge")

    ds, tr, va, _ = toy
    X = np.asarray(ds.corpus_emb)
    assert np.abs(NudgeM(gamma).fit(X, tr, va).embeddings_
                  - run_reference(NudgeM, X, tr, va, gamma=gamma)).max() < 1e-5
    assert np.abs(NudgeN(gamma).fit(X, tr, va).embeddings_
                  - run_reference(NudgeN, X, tr, va, gamma=gamma)).max() < 1e-5


@pytest.mark.slow
def test_scifact_reproduces_reference_figures(scifact):
    """../shared/datasets/scifact, paper split seed 0: NDCG@10 0.6123 / 0.7794 / 0.8159."""
    needs("nudge")

    ds = scifact
    tr, va, te = split_sets(ds, 0)
    X = np.asarray(ds.corpus_emb)

    def ndcg10(emb):
        return evaluate(search(te.emb, emb, 40)[1], te)["ndcg@10"].mean()

    assert ndcg10(normalize_rows(X)) == pytest.approx(0.6123, abs=0.002)
    m, n = NudgeM().fit(X, tr, va), NudgeN().fit(X, tr, va)
    assert ndcg10(m.embeddings_) == pytest.approx(0.7794, abs=0.002)
    assert ndcg10(n.embeddings_) == pytest.approx(0.8159, abs=0.002)
    ref_m, ref_n = run_reference(NudgeM, X, tr, va), run_reference(NudgeN, X, tr, va)
    assert np.abs(m.embeddings_ - ref_m).max() < 1e-5
    assert np.abs(n.embeddings_ - ref_n).max() < 1e-5
    moved = m.moved_[0]
    assert m.gamma_ == pytest.approx(np.linalg.norm(ref_m[moved] - normalize_rows(X[moved:moved + 1])[0]),
                                     abs=1e-6)


def test_m_intervals_do_not_depend_on_block_size(toy):
    from nudge_core.gamma_path import m_intervals

    ds, tr, va, _ = toy
    est = NudgeM().fit(ds.corpus_emb, tr, va)
    prep = est.path_.prepare(va.emb)
    act = est.active_
    args = (prep["qv"], prep["qc"], act.fixed_scores[:, 0], act.val_query, act.val_local)
    lo1, hi1 = m_intervals(*args)
    lo2, hi2 = m_intervals(*args, block_elems=50)
    assert len(lo1) > 0 and np.array_equal(lo1, lo2) and np.array_equal(hi1, hi2)


def test_masked_reduce_equals_numpy_where_reductions():
    from nudge_core.gamma_path import _masked_reduce

    rng = np.random.default_rng(11)
    for _ in range(50):
        x = rng.standard_normal((9, 13)) * 10.0 ** rng.integers(-300, 300, (9, 13))
        x[rng.random(x.shape) < 0.1] = np.inf
        x[rng.random(x.shape) < 0.1] = -np.inf
        x[rng.random(x.shape) < 0.05] = 0.0
        mask = rng.random(x.shape) < rng.uniform(0, 1)
        mask[0] = False                                   # a row with nothing in the mask
        work = np.empty_like(x)
        assert np.array_equal(_masked_reduce(np.fmax, x, mask, -np.inf, work),
                              np.max(x, axis=1, where=mask, initial=-np.inf))
        assert np.array_equal(_masked_reduce(np.fmin, x, mask, np.inf, work),
                              np.min(x, axis=1, where=mask, initial=np.inf))


def test_fit_releases_the_validation_scores(toy):
    ds, tr, va, _ = toy
    for cls in (NudgeM, NudgeN):
        assert cls().fit(ds.corpus_emb, tr, va).active_.qv is None


@pytest.mark.parametrize("seed", range(6))
def test_nudge_n_closed_form_is_optimal(seed):
    """Independent check of NUDGE-N's closed form: no unit vector within the bound scores higher.

    scipy's SLSQP maximises c·e subject to ||e|| = 1 and ||e - v||² <= γ from several starts; the
    closed form (GammaPath.embed) must be feasible and reach at least the best optimum found.
    Records whose pull points away from them (v·c < 0) are not optimised by the method (it leaves
    them at v until ĉ itself is within the bound, as the reference does: nudge-method.md), so for
    them the test checks that rule instead.
    """
    from scipy.optimize import minimize

    from nudge_core.gamma_path import GammaPath

    rng = np.random.default_rng(seed)
    dim = int(rng.integers(2, 6))
    v = normalize_rows(rng.standard_normal((4, dim)).astype(np.float32))
    c = rng.standard_normal((4, dim)).astype(np.float32)
    c[0] = -v[0] * 2 + 0.3 * c[0]  # a pull pointing away from its record
    path = GammaPath(True, v, c)
    for gamma in (0.05, 0.5, 1.9, 2.5, 4.0):
        e = path.embed(gamma).astype(np.float64)
        for i in range(len(v)):
            vi, ci = v[i].astype(np.float64), c[i].astype(np.float64)
            assert abs(np.linalg.norm(e[i]) - 1) < 1e-5
            assert np.sum((e[i] - vi) ** 2) <= gamma + 1e-5
            if vi @ ci < 0:
                c_hat = ci / np.linalg.norm(ci)
                at_c = vi @ c_hat >= 1 - gamma / 2
                assert np.allclose(e[i], c_hat if at_c else vi, atol=1e-6)
                continue
            best = -np.inf
            for start in [vi] + list(rng.standard_normal((4, dim))):
                res = minimize(lambda x: -ci @ x, start, method="SLSQP", constraints=[
                    {"type": "eq", "fun": lambda x: x @ x - 1},
                    {"type": "ineq", "fun": lambda x: gamma - (x - vi) @ (x - vi)}])
                x = res.x
                if abs(x @ x - 1) < 1e-6 and (x - vi) @ (x - vi) <= gamma + 1e-6:
                    best = max(best, ci @ x)
            assert ci @ e[i] >= best - 1e-4 * max(1.0, np.linalg.norm(ci)), (seed, gamma, i)


def test_nudge_m_on_a_grid_picks_the_best_grid_point(toy):
    ds, tr, va, _ = toy
    exact = NudgeM().fit(ds.corpus_emb, tr, va)
    grid = (0.5, 0.01, exact.gamma_, 3.0)
    on_grid = NudgeM(gammas=grid).fit(ds.corpus_emb, tr, va)
    objective = {g: NudgeM(g).fit(ds.corpus_emb, tr, va).objective_ for g in grid}
    best = max(objective.values())
    assert on_grid.gamma_ == next(g for g in grid if objective[g] == best)
    assert on_grid.objective_ == best == exact.objective_


def test_estimators_follow_the_scikit_learn_contract(toy):
    from sklearn.base import clone

    from nudge_core.baselines import LinearAdaptor

    ds, tr, va, _ = toy
    est = NudgeN(gammas=(0.1, 0.2), val_k=2)
    assert est.get_params() == {"gamma": None, "gammas": (0.1, 0.2), "val_k": 2, "objective": None,
                                "exact": None, "gamma_bounds": None, "choose": "smallest"}
    twin = clone(est.set_params(val_k=3))
    assert twin.get_params()["val_k"] == 3 and not hasattr(twin, "gamma_curve_")
    assert LinearAdaptor(max_epochs=3).get_params()["max_epochs"] == 3
    with pytest.raises(ValueError, match="val_k must be 1 for NUDGE-M"):
        NudgeM(val_k=2).fit(ds.corpus_emb, tr, va)
    with pytest.raises(ValueError, match="max_epochs must be an integer >= 1"):
        LinearAdaptor(max_epochs=0).fit(ds.corpus_emb, tr, va)


def test_a_fixed_nudge_n_gamma_is_kept_and_its_curve_still_spans_the_grid(toy):
    """A fixed γ is not chosen, but the validation curve around it is drawn (it was one point,
    so the Fine-tune chart and slider had nothing to show)."""
    ds, tr, va, _ = toy
    est = NudgeN(gamma=0.05).fit(ds.corpus_emb, tr, va)
    assert est.gamma_ == 0.05
    grid = NudgeN.bounds.default_grid
    assert len(est.curve_gammas_) >= len(grid) and 0.05 in est.curve_gammas_
    assert est.curve_gammas_.max() == max(grid)
    free = NudgeN(gammas=list(est.curve_gammas_)).fit(ds.corpus_emb, tr, va)
    np.testing.assert_allclose(est.curve_objective_, free.curve_objective_)  # same curve
    assert est.objective_ == est.curve_objective_[list(est.curve_gammas_).index(0.05)]
