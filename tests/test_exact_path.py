"""Exact γ paths: the step curve equals brute force at random γ, the grid at grid points, and
its best is never below the grid's (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest

from nudge_core.data import dataset_from_arrays
from nudge_core.exact_path import StepCurve, objective_of_ranks, parse_objective
from nudge_core.nudge import NudgeM, NudgeN
from nudge_core.retrieval import normalize_rows
from nudge_core.splits import paper_split

OBJECTIVES = ("hit@1", "recall@3", "ndcg@5", "mrr@10")


def problem(seed: int, duplicates: bool = True):
    """A small random problem with graded multi-answer queries, duplicated records and training
    queries that point away from their records (NUDGE-N's jump)."""
    rng = np.random.default_rng(seed)
    dim, n = int(rng.integers(2, 7)), 70
    records = normalize_rows(rng.standard_normal((n, dim)).astype(np.float32))
    if duplicates:
        records[60:66] = records[:6]  # exact duplicates: ties, which count in a's favour
    qrels, queries = {}, []
    for j in range(90):
        answers = rng.choice(n, size=int(rng.integers(1, 4)), replace=False)
        q = records[answers].sum(0) + rng.standard_normal(dim) * 0.8
        if j % 9 == 0:
            q = -q  # pulls this query's records away from themselves if it trains
        queries.append(q)
        qrels[str(j)] = {str(a): int(rng.integers(1, 4)) for a in answers}
    ds = dataset_from_arrays(records, np.array(queries, np.float32), qrels)
    sp = paper_split(ds.labelled_ids, seed=seed, val_frac=0.25)
    return ds, ds.queries(sp.train), ds.queries(sp.val)


def brute_force(cls, ds, train, val, gamma: float, objective: str) -> float:
    """Fit at ``gamma``, score every record in float64, rank with ties in the relevant record's
    favour, and average the objective over validation queries."""
    e = cls(gamma).fit(ds.corpus_emb, train, val).embeddings_.astype(np.float64)
    scores = val.emb.astype(np.float64) @ e.T
    values = []
    for j in range(len(val)):
        s, rel = scores[j], val.answers[j]
        tol = 4e-7 * np.abs(s).max()
        ranks = 1 + (s[None, :] > s[rel][:, None] + tol).sum(axis=1)
        values.append(objective_of_ranks(ranks[None], val.grades[j].astype(float),
                                         parse_objective(objective))[0])
    return float(np.mean(values))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("cls", [NudgeM, NudgeN])
def test_exact_curve_equals_brute_force_at_random_gamma(seed, cls):
    ds, train, val = problem(seed)
    hi = 4.0 if cls is NudgeN else 3.0
    rng = np.random.default_rng(100 + seed)
    for objective in OBJECTIVES:
        est = cls(objective=objective, exact=True, gamma_bounds=(0.0, hi)).fit(ds.corpus_emb, train, val)
        curve = est.curve_
        assert curve.breaks[0] == 0 and np.all(np.diff(curve.breaks) > 0)
        for gamma in rng.uniform(0, hi, 50):
            assert curve.value(gamma) == pytest.approx(
                brute_force(cls, ds, train, val, gamma, objective), abs=1e-9), (objective, gamma)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("val_k", [1, 3])
def test_nudge_n_exact_curve_equals_the_grid_and_beats_it(seed, val_k):
    """Without exact ties (which the grid's top-k breaks arbitrarily and the exact curve counts
    as success) the two agree at every grid point; with them the exact value is never lower."""
    for duplicates in (False, True):
        ds, train, val = problem(seed, duplicates)
        grid = NudgeN(val_k=val_k).fit(ds.corpus_emb, train, val)
        exact = NudgeN(val_k=val_k, exact=True).fit(ds.corpus_emb, train, val)
        for g, o in zip(grid.curve_gammas_, grid.curve_objective_):
            if duplicates:
                assert exact.curve_.value(g) >= o - 1e-12
            else:
                assert exact.curve_.value(g) == pytest.approx(o, abs=1e-12)
        assert exact.objective_ >= grid.objective_ - 1e-12
        assert exact.curve_.best == exact.objective_


@pytest.mark.parametrize("seed", range(4))
def test_nudge_m_exact_curve_agrees_with_the_interval_sweep(seed):
    ds, train, val = problem(seed, duplicates=False)
    sweep = NudgeM().fit(ds.corpus_emb, train, val)
    exact = NudgeM(exact=True, gamma_bounds=(0.0, 1000.0)).fit(ds.corpus_emb, train, val)
    assert exact.objective_ == sweep.objective_
    assert exact.gamma_ == pytest.approx(sweep.gamma_, rel=1e-5, abs=1e-9)
    mids = (sweep.curve_gammas_[:-1] + sweep.curve_gammas_[1:]) / 2
    for g, o in zip(mids, sweep.curve_objective_[:-1]):  # interval interiors: no tie conventions
        assert exact.curve_.value(g) == pytest.approx(o, abs=1e-12)


def test_nudge_n_record_pulled_away_jumps_after_gamma_2():
    """A record whose only training query points away from it stays until γ = 2(1 - cos φ) > 2,
    then sits at ĉ: the exact curve has its event there."""
    v = normalize_rows(np.array([[1.0, 0.1], [0.0, 1.0], [0.6, 0.8]], np.float32))
    q_train = -v[0:1] + np.array([[0.0, 0.05]], np.float32)
    q_val = np.array([[-0.9, 0.05]], np.float32)  # prefers ĉ of record 0
    ds = dataset_from_arrays(v, np.vstack([q_train, q_val]), {"0": {"0": 1}, "1": {"0": 1}})
    train, val = ds.queries(["0"]), ds.queries(["1"])
    est = NudgeN(exact=True).fit(ds.corpus_emb, train, val)
    phi = np.arccos(float(est.path_.cos_vc[0]))
    jump = 2 * (1 - np.cos(phi))
    assert jump > 2 and np.isclose(est.curve_.breaks, jump).any()
    assert est.curve_.value(jump - 1e-6) == 0 and est.curve_.value(jump + 1e-6) == 1
    assert est.gamma_ == pytest.approx(jump)


def test_choose_rules_and_curve_errors():
    curve = StepCurve("hit@1", 0.0, 1.0, np.array([0.0, 0.2, 0.3, 0.7]),
                      np.array([0.0, 1.0, 1.0, 1.0]), np.array([0.0, 1.0, 0.5, 1.0]))
    assert curve.choose("smallest") == 0.2
    assert curve.choose("plateau-middle") == pytest.approx(0.85)  # (0.7, 1.0) beats (0.2, 0.3)
    assert curve.value(0.25) == 1.0 and curve.value(0.3) == 1.0 and curve.value(0.5) == 0.5
    with pytest.raises(ValueError, match="outside the curve"):
        curve.value(1.5)
    with pytest.raises(ValueError, match="choose must be"):
        curve.choose("largest")


@pytest.mark.parametrize("kwargs, match", [
    ({"objective": "ndcg@0"}, "objective must be"), ({"objective": "precision@3"}, "objective must be"),
    ({"gamma_bounds": (1.0, 0.5)}, "low < high"), ({"gamma_bounds": (0.0, 5.0)}, r"\[0, 4\]"),
    ({"choose": "plateau-middle", "exact": False}, "needs the exact search"),
    ({"gammas": (0.1,), "exact": True}, "either gammas"),
])
def test_bad_exact_settings(kwargs, match):
    ds, train, val = problem(0)
    with pytest.raises(ValueError, match=match):
        NudgeN(**kwargs).fit(ds.corpus_emb, train, val)
