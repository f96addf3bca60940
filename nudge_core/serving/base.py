"""What every serving index shares: the :class:`~nudge_core.index.Index` protocol plus build cost.

A serving index is built from (n, d) float32 records and answers d-dimensional float32 queries
(it may truncate or quantize them itself). Besides ``n``, ``dim``, ``search``, ``take`` and
``replace`` it reports ``build_seconds`` (wall time of encoding / training / adding) and
``nbytes`` (what it stores: codes, graph links, centroids, calibration ranges), so
``bytes_per_record = nbytes / n``. :class:`FlatIndex` is exact float32 search (``exact``).
"""

from __future__ import annotations

import numpy as np

from ..retrieval import search as exact_search

#: Elements of the (queries x candidates x d) block :func:`rescore` gathers at once (64 MiB).
RESCORE_BLOCK_ELEMS = 2 ** 24


class ServingIndex:
    """Base class: argument checks, exclusion and padding for :meth:`_search` of subclasses.

    Subclasses set ``n``, ``dim``, ``build_seconds``, ``nbytes`` and implement
    ``_search(queries, k, excluded) -> (scores, rows)`` (excluded: sorted unique rows or None),
    ``take`` and ``replace``. Scores are what the index ranks by (documented per class).
    """

    n: int
    dim: int
    build_seconds: float = 0.0
    nbytes: int = 0

    @property
    def bytes_per_record(self) -> float:
        """Stored bytes / records (codes or vectors, plus links, ids, centroids, ranges)."""
        return self.nbytes / max(self.n, 1)

    def _queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have dimension {q.shape[1]}, the index {self.dim}")
        return q

    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None,
               excluded_scores: bool = False):
        """(scores, rows), each (n_queries, k) best first; row -1 / score -inf pad. With
        ``excluded_scores`` a third (n_queries, n_excluded) array holds :meth:`score_rows` of
        ``np.unique(exclude)``."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = self._queries(queries)
        excluded = None if exclude is None else np.unique(np.asarray(exclude, dtype=np.int64))
        if excluded_scores and excluded is None:
            raise ValueError("excluded_scores=True needs exclude")
        scores, rows = self._search(q, k, excluded)
        scores, rows = pad(scores, rows, k)
        return (scores, rows, self.score_rows(q, excluded)) if excluded_scores else (scores, rows)

    def score_rows(self, queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(n_queries, len(rows)) float32 scores of given rows, as :meth:`search` ranks them
        (default: inner products with :meth:`take`, which subclasses decode to d dimensions)."""
        return self._queries(queries) @ self.take(rows).T

    def _search(self, queries: np.ndarray, k: int, excluded: np.ndarray | None):
        raise NotImplementedError

    def take(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def replace(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        raise NotImplementedError


def pad(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores float32, rows int64), each (n_queries, k): missing results (faiss's -1 rows and
    its -3.4e38 scores) become row -1 / score -inf, short results are padded with them."""
    scores = np.asarray(scores, dtype=np.float32)
    rows = np.asarray(rows, dtype=np.int64)
    out_s = np.full((rows.shape[0], k), -np.inf, dtype=np.float32)
    out_r = np.full((rows.shape[0], k), -1, dtype=np.int64)
    m = min(k, rows.shape[1])
    out_s[:, :m], out_r[:, :m] = scores[:, :m], rows[:, :m]
    missing = out_r < 0
    out_s[missing], out_r[missing] = -np.inf, -1
    return out_s, out_r


def rescore(queries: np.ndarray, candidates: np.ndarray, take, k: int):
    """Re-rank each query's candidate rows by ``query · take(rows)``, keep the best ``k``.

    sentence-transformers' convention (``semantic_search_faiss``): the float query against the
    candidates' stored (decoded) vectors, ``np.einsum("ij,ikj->ik")``, ties in candidate order.
    queries: (nq, d) float32; candidates: (nq, c) int64, -1 = none (scores -inf).
    Returns (scores, rows), each (nq, min(k, c)).
    """
    nq, c = candidates.shape
    width = min(k, c)
    out_s = np.empty((nq, width), dtype=np.float32)
    out_r = np.empty((nq, width), dtype=np.int64)
    step = max(1, RESCORE_BLOCK_ELEMS // max(c * queries.shape[1], 1))
    for a in range(0, nq, step):
        cand = candidates[a:a + step]
        safe = np.where(cand >= 0, cand, 0)
        vecs = take(safe.ravel()).reshape(*cand.shape, -1)
        s = np.einsum("ij,ikj->ik", queries[a:a + step], vecs).astype(np.float32)
        s[cand < 0] = -np.inf
        order = np.argsort(-s, axis=1, kind="stable")[:, :width]
        out_s[a:a + step] = np.take_along_axis(s, order, axis=1)
        out_r[a:a + step] = np.take_along_axis(cand, order, axis=1)
    return out_s, out_r


class FlatIndex(ServingIndex):
    """``exact``: float32 inner-product search of the records as given (kept, not copied), by
    :func:`nudge_core.retrieval.search` (the engine's exact search). 4·d bytes per record."""

    def __init__(self, vectors: np.ndarray) -> None:
        if vectors.ndim != 2:
            raise ValueError(f"an index holds a 2-D (n, d) matrix, got shape {vectors.shape}")
        self.vectors = vectors
        self.n, self.dim = (int(x) for x in vectors.shape)
        self.nbytes = 4 * self.n * self.dim

    def _search(self, queries, k, excluded):
        return exact_search(queries, self.vectors, k, exclude=excluded)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.vectors[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def replace(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Writes the rows in place (the records must be a writable array)."""
        self.vectors[np.asarray(rows, dtype=np.int64)] = vectors
