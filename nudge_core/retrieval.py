"""Exact k-NN retrieval through faiss, blocked so that memory stays bounded.

Scores are inner products. Cosine similarity is the inner product on unit-norm records (queries
need no normalising: a positive scale does not change a query's ranking). NUDGE-M outputs are not
unit norm and are searched with the plain inner product, as the method requires.
"""

from __future__ import annotations

import faiss
import numpy as np

#: Records per block for searches and row normalisation (64k x 384 float32 = 96 MiB).
BLOCK_ROWS = 65536


def normalize_rows(x: np.ndarray, out: np.ndarray | None = None,
                   block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """Unit-norm copy of ``x`` (n, d) as float32, computed block by block.

    Rows are divided by max(||row||, 1e-12), as ``torch.nn.functional.normalize`` does.
    ``x`` may be a read-only memory map; ``out`` may be ``x`` itself when it is writable.
    """
    if out is None:
        out = np.empty(x.shape, dtype=np.float32)
    for start in range(0, x.shape[0], block_rows):
        block = np.asarray(x[start:start + block_rows], dtype=np.float32)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        np.divide(block, np.maximum(norms, 1e-12), out=out[start:start + block_rows])
    return out


def search(queries: np.ndarray, base: np.ndarray, k: int, exclude: np.ndarray | None = None,
           block_rows: int = BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` inner-product neighbours of each query in ``base``, exactly.

    queries: (n_queries, d) float32; base: (n_records, d) float32, possibly memory-mapped.
    ``exclude``: record rows never returned. Returns ``(scores, rows)``, both (n_queries, k),
    best first; when fewer than ``k`` records are eligible the tail holds row -1 and score -inf.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    nq, d = queries.shape
    heap = faiss.ResultHeap(nq, k, keep_max=True)
    excluded = np.unique(np.asarray(exclude, dtype=np.int64)) if exclude is not None else None
    for start in range(0, base.shape[0], block_rows):
        block = np.ascontiguousarray(base[start:start + block_rows], dtype=np.float32)
        nb = block.shape[0]
        kb = min(k, nb)
        scores = np.empty((nq, kb), dtype=np.float32)
        rows = np.empty((nq, kb), dtype=np.int64)
        sel = None
        if excluded is not None:
            local = excluded[(excluded >= start) & (excluded < start + nb)] - start
            if len(local):
                sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(local))
        faiss.knn_inner_product(faiss.swig_ptr(queries), faiss.swig_ptr(block), d, nq, nb, kb,
                                faiss.swig_ptr(scores), faiss.swig_ptr(rows), sel)
        found = rows >= 0
        rows = np.where(found, rows + start, -1)
        scores = np.where(found, scores, -np.inf).astype(np.float32)
        heap.add_result(scores, rows)
    heap.finalize()
    scores, rows = heap.D, heap.I
    missing = rows < 0
    if missing.any():
        scores = np.where(missing, -np.inf, scores).astype(np.float32)
        rows = np.where(missing, -1, rows)
    return scores, rows


def merge_topk(scores_a: np.ndarray, rows_a: np.ndarray, scores_b: np.ndarray,
               rows_b: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` best of two candidate lists per query, best first.

    scores_*: (n_queries, m_*); rows_*: the same shape, or (m_*,) shared by every query, holding
    record indices (row -1 has score -inf and
    never beats a real record). Exact ties at the k-th place are broken arbitrarily.
    """
    def best(scores: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if k >= scores.shape[1]:
            return scores, np.broadcast_to(rows, scores.shape)
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        rows = np.take_along_axis(np.broadcast_to(rows, scores.shape), part, axis=1)
        return np.take_along_axis(scores, part, axis=1), rows

    (sa, ra), (sb, rb) = best(scores_a, rows_a), best(scores_b, rows_b)
    scores = np.concatenate([sa, sb], axis=1)
    rows = np.concatenate([ra, rb], axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :min(k, scores.shape[1])]
    return np.take_along_axis(rows, order, axis=1)
