"""Ranking metrics, per query, from the grades of the retrieved records.

Every function takes ``gains``: (n_queries, K) float64, the grade of the record at each rank
(0 for non-relevant; rank 1 first), plus what it needs of the judgements, and returns
(n_queries,) float64. :func:`evaluate` builds ``gains`` from retrieved rows and a QuerySet and
returns one flat dict with keys like ``"ndcg@10"`` (sentence-transformers style). ``recall@k`` is
the capped form |top-k ∩ R| / min(|R|, k) (the NUDGE authors'); ``recall_uncapped@k`` divides by
|R| as trec_eval and BEIR do.
Checked against ``pytrec_eval`` (trec_eval) in ``tests/test_metrics.py``.
"""

from __future__ import annotations

import numpy as np

from .data import QuerySet

#: Cut-offs reported everywhere.
KS = (1, 5, 10, 20, 40)
#: Metric families, in display order (tables; ``recall_uncapped`` is in :func:`evaluate` too).
FAMILIES = ("ndcg", "recall", "mrr")
#: Every family :func:`evaluate` reports at each cut-off of :data:`KS`.
ALL_FAMILIES = ("ndcg", "recall", "recall_uncapped", "mrr")


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def dcg_at_k(gains: np.ndarray, k: int) -> np.ndarray:
    """DCG@k = sum_{r=1..k} gain_r / log2(r + 1), linear gain = grade (Järvelin & Kekäläinen 2002;
    trec_eval's ``ndcg_cut``)."""
    g = gains[:, :k]
    return g @ _discounts(g.shape[1])


def ndcg_at_k(gains: np.ndarray, ideal: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k = DCG@k / IDCG@k. ``ideal``: (n_queries, m) each query's relevant grades sorted
    descending, zero padded (:attr:`Relevance.ideal`); IDCG@k is the DCG of its first k."""
    top = np.zeros((len(ideal), k))
    width = min(k, ideal.shape[1])
    top[:, :width] = ideal[:, :width]
    idcg = top @ _discounts(k)
    dcg = dcg_at_k(gains, k)
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def recall_at_k(gains: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Recall@k = |top-k ∩ R| / min(|R|, k) (the NUDGE authors' definition; it reaches 1 when
    every top-k slot that could hold a relevant record does). trec_eval divides by |R|."""
    hits = (gains[:, :k] > 0).sum(axis=1)
    return hits / np.minimum(n_relevant, k)


def recall_uncapped_at_k(gains: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Uncapped Recall@k = |top-k ∩ R| / |R| (trec_eval's ``recall_k`` and BEIR's "Recall@k");
    below 1 whenever |R| > k, however good the ranking. Reported as ``recall_uncapped@k``."""
    hits = (gains[:, :k] > 0).sum(axis=1)
    return hits / n_relevant


def mrr_at_k(gains: np.ndarray, k: int) -> np.ndarray:
    """MRR@k = 1 / rank of the first relevant record within the top k, 0 if none (Voorhees 1999)."""
    rel = gains[:, :k] > 0
    first = rel.argmax(axis=1)
    return np.where(rel.any(axis=1), 1.0 / (first + 1), 0.0)


def hit_at_1(gains: np.ndarray) -> np.ndarray:
    """Hit@1 = 1 if the top record is relevant, else 0 (= precision@1 = the NUDGE-M objective)."""
    return (gains[:, 0] > 0).astype(np.float64)


def objective_values(top_rows: np.ndarray, relevance, family: str, k: int) -> np.ndarray:
    """(n_queries,) one validation objective per query for rows ranked best first (at least k
    columns): ``family`` "hit" (hit@1), "recall", "ndcg" or "mrr" at cut-off ``k``;
    ``relevance``: the queries' :class:`~nudge_core.relevance.Relevance`."""
    gains = relevance.gains(top_rows)
    if family == "hit":
        return hit_at_1(gains)
    if family == "recall":
        return recall_at_k(gains, relevance.n_relevant, k)
    if family == "ndcg":
        return ndcg_at_k(gains, relevance.ideal, k)
    return mrr_at_k(gains, k)


def evaluate(top_rows: np.ndarray, queries: QuerySet, ks: tuple[int, ...] = KS) -> dict[str, np.ndarray]:
    """Per-query metrics for rows ranked best first: ``{"ndcg@10": (n,) array, ..., "hit@1": ...}``.

    ``top_rows`` must hold at least ``max(ks)`` columns (pad with -1 if the corpus is smaller).
    """
    if top_rows.shape[1] < max(ks):
        pad = np.full((top_rows.shape[0], max(ks) - top_rows.shape[1]), -1, dtype=np.int64)
        top_rows = np.concatenate([top_rows, pad], axis=1)
    rel = queries.relevance
    gains = rel.gains(top_rows)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"ndcg@{k}"] = ndcg_at_k(gains, rel.ideal, k)
        out[f"recall@{k}"] = recall_at_k(gains, rel.n_relevant, k)
        out[f"recall_uncapped@{k}"] = recall_uncapped_at_k(gains, rel.n_relevant, k)
        out[f"mrr@{k}"] = mrr_at_k(gains, k)
    out["hit@1"] = hit_at_1(gains)
    return out


def mean_metrics(per_query: dict[str, np.ndarray]) -> dict[str, float]:
    """Means over queries of :func:`evaluate`'s output."""
    return {name: float(np.mean(values)) if len(values) else float("nan")
            for name, values in per_query.items()}
