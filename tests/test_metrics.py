"""Metrics: tiny hand-computed cases, and equality with pytrec_eval (trec_eval) on random runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytrec_eval

from nudge_core.data import QuerySet
from nudge_core.metrics import (KS, evaluate, hit_at_1, mean_metrics, mrr_at_k, ndcg_at_k, recall_at_k,
                                recall_uncapped_at_k)


def test_hand_computed_single_query():
    # ranks 1..5 hold grades 0, 2, 0, 1, 0; relevant set has grades {2, 1, 1} (one never retrieved)
    gains = np.array([[0, 2, 0, 1, 0]], dtype=float)
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(gains, np.array([[2.0, 1.0, 1.0]]), 5)[0] == pytest.approx(dcg / idcg)
    assert recall_at_k(gains, np.array([3]), 5)[0] == pytest.approx(2 / 3)
    assert recall_at_k(gains, np.array([3]), 1)[0] == 0  # min(|R|, 1) = 1, nothing at rank 1
    assert recall_at_k(gains, np.array([3]), 2)[0] == pytest.approx(1 / 2)  # denominator min(3, 2)
    assert mrr_at_k(gains, 5)[0] == pytest.approx(1 / 2)
    assert mrr_at_k(gains, 1)[0] == 0
    assert hit_at_1(gains)[0] == 0


def test_perfect_and_empty_rankings():
    qs = QuerySet(["a", "b"], np.zeros((2, 2), np.float32), [np.array([3]), np.array([5, 6])],
                  [np.array([1.0]), np.array([2.0, 1.0])])
    rows = np.array([[3] + [-1] * 39, [0, 1, 2] + [-1] * 37])
    out = mean_metrics(evaluate(rows, qs))
    assert out["ndcg@10"] == pytest.approx(0.5)   # query a perfect, query b nothing
    assert out["recall@40"] == pytest.approx(0.5)
    assert out["hit@1"] == pytest.approx(0.5)
    assert set(out) == {f"{m}@{k}" for m in ("ndcg", "recall", "recall_uncapped", "mrr")
                        for k in KS} | {"hit@1"}


@pytest.mark.parametrize("seed", range(5))
def test_equal_to_pytrec_eval(seed):
    rng = np.random.default_rng(seed)
    n_docs, n_q = 200, 60
    answers, grades, qrels, run, top_rows = [], [], {}, {}, []
    for j in range(n_q):
        k = int(rng.integers(1, 30))          # some queries have more relevant records than k
        ans = rng.choice(n_docs, size=k, replace=False)
        g = rng.integers(1, 4, size=k).astype(float)
        answers.append(ans)
        grades.append(g)
        qrels[f"q{j}"] = {f"d{a}": int(x) for a, x in zip(ans, g)}
        scores = rng.permutation(n_docs).astype(float)  # distinct scores: no tie ambiguity
        order = np.argsort(-scores)[:40]
        top_rows.append(order)
        run[f"q{j}"] = {f"d{d}": float(scores[d]) for d in order}
    qs = QuerySet([f"q{j}" for j in range(n_q)], np.zeros((n_q, 2), np.float32), answers, grades)
    ours = evaluate(np.array(top_rows), qs)
    cuts = ",".join(map(str, KS))
    ev = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{cuts}", f"recall.{cuts}", "P.1"})
    theirs = ev.evaluate(run)
    for j in range(n_q):
        t = theirs[f"q{j}"]
        n_rel = len(answers[j])
        for k in KS:
            assert ours[f"ndcg@{k}"][j] == pytest.approx(t[f"ndcg_cut_{k}"], abs=1e-12)
            # trec_eval divides by |R|; ours by min(|R|, k): same hit count
            assert ours[f"recall@{k}"][j] * min(n_rel, k) == pytest.approx(t[f"recall_{k}"] * n_rel,
                                                                          abs=1e-9)
            # the uncapped form is trec_eval's recall_k itself
            assert ours[f"recall_uncapped@{k}"][j] == pytest.approx(t[f"recall_{k}"], abs=1e-12)
        assert ours["hit@1"][j] == pytest.approx(t["P_1"])
    for k in KS:  # MRR@k = trec_eval recip_rank on the run cut at k
        cut = {q: dict(sorted(r.items(), key=lambda x: -x[1])[:k]) for q, r in run.items()}
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut)
        for j in range(n_q):
            assert ours[f"mrr@{k}"][j] == pytest.approx(rr[f"q{j}"]["recip_rank"], abs=1e-12)



def test_capped_and_uncapped_recall_differ_only_when_more_relevant_than_k():
    # 3 relevant records, the top 2 both relevant: capped recall@2 = 2/min(3,2) = 1, uncapped 2/3
    qs = QuerySet(["a"], np.zeros((1, 2), np.float32), [np.array([0, 1, 2])], [np.ones(3)])
    out = mean_metrics(evaluate(np.array([[0, 1] + [-1] * 38]), qs))
    assert out["recall@1"] == 1.0 and out["recall_uncapped@1"] == pytest.approx(1 / 3)
    assert out["recall@5"] == out["recall_uncapped@5"] == pytest.approx(2 / 3)  # |R| <= k: equal
    gains = np.array([[1.0, 1.0, 0.0]])
    assert recall_at_k(gains, np.array([3]), 2)[0] == 1.0
    assert recall_uncapped_at_k(gains, np.array([3]), 2)[0] == pytest.approx(2 / 3)
