"""The index seam: every search of record embeddings goes through this small protocol.

NUDGE, the adaptor and evaluation only need three things of an index: the top-k records of some
queries (optionally never returning some rows), the stored vectors of some rows, and replacing
some rows (NUDGE writes the records it moved). :class:`ExactIndex` is exact float32 inner-product
search in numpy (:func:`retrieval.search`); compressed, approximate (faiss) and sharded indexes
implement the same :class:`Index` protocol.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from .retrieval import search


@runtime_checkable
class Index(Protocol):
    """Inner-product k-NN over ``n`` records of dimension ``dim``."""

    n: int
    dim: int

    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None,
               excluded_scores: bool = False):
        """(scores, rows), each (n_queries, k), best first; rows -1 / scores -inf pad when fewer
        than k records are eligible. ``exclude``: rows never returned. With ``excluded_scores``
        a third (n_queries, n_excluded) array holds the scores of ``np.unique(exclude)``."""

    def take(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), dim) float32 copy of the stored vectors of ``rows``."""

    def replace(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Store ``vectors`` (len(rows), dim) in place of ``rows``."""


class ExactIndex:
    """Exact inner-product search over ``vectors`` (n, d) float32 (kept, not copied; may be a
    memory map when no row is replaced). Cosine search = unit-norm vectors (:func:`normalize_rows`).

    ``vectors`` may also be an out-of-core array-like with its own ``search``
    (:class:`nudge_core.outofcore.ShardedIndex`): searches go to it, rows are read and replaced
    through its indexing, so every method runs on a sharded corpus unchanged.
    """

    def __init__(self, vectors: np.ndarray) -> None:
        if vectors.ndim != 2:
            raise ValueError(f"an index holds a 2-D (n, d) matrix, got shape {vectors.shape}")
        self.vectors = vectors
        self.n, self.dim = (int(x) for x in vectors.shape)

    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None,
               excluded_scores: bool = False):
        if hasattr(self.vectors, "search"):  # an out-of-core view searches itself, shard by shard
            return self.vectors.search(queries, k, exclude=exclude, excluded_scores=excluded_scores)
        return search(queries, self.vectors, k, exclude=exclude, excluded_scores=excluded_scores)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.vectors[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def replace(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        self.vectors[np.asarray(rows, dtype=np.int64)] = vectors
