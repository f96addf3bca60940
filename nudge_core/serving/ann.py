"""Approximate inner-product indexes from faiss: ``IndexHNSWFlat``, ``IndexIVFFlat``, ``IndexIVFPQ``.

Every faiss call runs inside :func:`faiss_threads`: faiss's OpenMP threads keep spinning after a
parallel call returns and slow the numpy BLAS calls that follow (the README measured it for the
exact search; ``benchmarks/bench_serving.py`` shows it for these indexes), so the thread count is
set explicitly around each call and restored afterwards. :data:`DEFAULT_THREADS` = 1: no spinning
workers at all, and latencies that do not depend on the machine's core count.

Records are added block by block (memory-mapped input is never loaded whole); IVF's k-means
trains on at most 256 rows per centroid (faiss's own ``max_points_per_centroid``), a seeded
sample of the records.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import faiss
import numpy as np

from ..retrieval import BLOCK_ROWS
from .base import ServingIndex

#: faiss OpenMP threads used inside every faiss call of this package (restored afterwards).
DEFAULT_THREADS = 1
#: faiss's k-means cap on training points per centroid (``ClusteringParameters``).
POINTS_PER_CENTROID = 256


@contextmanager
def faiss_threads(n: int | None):
    """Run the block with faiss's OpenMP thread count set to ``n`` (None: leave it), then restore
    the previous count (``faiss.omp_set_num_threads`` affects the calling thread)."""
    if n is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(n))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


@contextmanager
def excluding(excluded: np.ndarray | None, params_type=None, **settings):
    """faiss ``SearchParameters`` (``params_type``, default the plain one) with ``settings`` and,
    when ``excluded`` (sorted int64 rows) is given, an ``IDSelector`` that skips those rows. The
    selector lives until the block ends (faiss keeps only a pointer)."""
    params_type = params_type or faiss.SearchParameters
    if excluded is None or len(excluded) == 0:
        yield params_type(**settings) if settings else None
        return
    batch = faiss.IDSelectorBatch(np.ascontiguousarray(excluded, dtype=np.int64))
    selector = faiss.IDSelectorNot(batch)
    params = params_type(sel=selector, **settings)
    try:
        yield params
    finally:
        del params, selector, batch


def _add(index, vectors: np.ndarray) -> None:
    for a in range(0, vectors.shape[0], BLOCK_ROWS):
        index.add(np.ascontiguousarray(vectors[a:a + BLOCK_ROWS], dtype=np.float32))


def training_sample(vectors: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """(min(n, size), d) float32: every row if n <= size, else ``size`` rows drawn without
    replacement (seeded), in row order."""
    n = vectors.shape[0]
    if n <= size:
        return np.ascontiguousarray(vectors, dtype=np.float32)
    rows = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
    return np.ascontiguousarray(vectors[rows], dtype=np.float32)


class _FaissIndex(ServingIndex):
    """Shared search / take / byte count of the float faiss indexes below."""

    threads: int = DEFAULT_THREADS
    params_type = None
    settings: dict = {}  # search-time parameters of ``params_type``

    def _finish(self, t0: float) -> None:
        self.nbytes = len(faiss.serialize_index(self.index))
        self.build_seconds = time.perf_counter() - t0

    def _search(self, queries, k, excluded):
        with faiss_threads(self.threads), \
                excluding(excluded, self.params_type, **self.settings) as params:
            return self.index.search(queries, k, params=params)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), d) float32 stored vectors (IVF-PQ: decoded, so approximate)."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        with faiss_threads(self.threads):
            return self.index.reconstruct_batch(rows)


class HNSWIndex(_FaissIndex):
    """``hnsw:M=..,ef=..,efc=..``: faiss ``IndexHNSWFlat`` (inner product), ``M`` links per node,
    ``efSearch = ef``, ``efConstruction = efc``. Bytes per record: 4·d + the graph links (about
    2·M·4 on the base level). ``replace`` rebuilds the whole graph from the stored vectors with
    the rows replaced (HNSW has no in-place update); ``build_seconds`` stays the first build's."""

    params_type = faiss.SearchParametersHNSW

    @property
    def settings(self) -> dict:
        """Search-time parameters (``ef`` may be changed between searches, no rebuild)."""
        return {"efSearch": self.ef}

    def __init__(self, vectors: np.ndarray, M: int = 32, ef: int = 64, efc: int = 40,
                 threads: int = DEFAULT_THREADS) -> None:
        t0 = time.perf_counter()
        self.n, self.dim = (int(s) for s in vectors.shape)
        self.M, self.ef, self.efc, self.threads = int(M), int(ef), int(efc), threads
        self._build(vectors)
        self._finish(t0)

    def _build(self, vectors: np.ndarray) -> None:
        self.index = faiss.IndexHNSWFlat(self.dim, self.M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = self.efc
        with faiss_threads(self.threads):
            _add(self.index, vectors)

    def replace(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        with faiss_threads(self.threads):
            stored = self.index.reconstruct_n(0, self.n)
        stored[np.asarray(rows, dtype=np.int64)] = vectors
        self._build(stored)


class IVFIndex(_FaissIndex):
    """``ivf:nlist=..,nprobe=..`` (faiss ``IndexIVFFlat``) or, with ``m``, ``ivfpq:nlist=..,m=..,
    bits=..,nprobe=..`` (``IndexIVFPQ``: residuals in ``m`` sub-vectors of ``bits`` bits each),
    inner product, coarse quantizer ``IndexFlatIP``. Trained on :func:`training_sample` of
    256 · max(nlist, 2^bits) rows. Bytes per record: 4·d (IVF-Flat) or m·bits/8 (IVF-PQ) plus an
    8-byte id, plus the centroids and codebooks spread over the records. ``replace`` re-encodes
    the rows with the trained quantizers (``update_vectors``; centroids and codebooks are not
    retrained), through a direct map made on first use (8 more bytes per record, not counted)."""

    params_type = faiss.SearchParametersIVF

    @property
    def settings(self) -> dict:
        """Search-time parameters (``nprobe`` may be changed between searches, no rebuild)."""
        return {"nprobe": self.nprobe}

    def __init__(self, vectors: np.ndarray, nlist: int = 64, nprobe: int = 8, m: int | None = None,
                 bits: int = 8, threads: int = DEFAULT_THREADS, seed: int = 0) -> None:
        t0 = time.perf_counter()
        self.n, self.dim = (int(s) for s in vectors.shape)
        self.nlist, self.nprobe, self.m, self.bits = int(nlist), int(nprobe), m, int(bits)
        self.threads = threads
        self.quantizer = faiss.IndexFlatIP(self.dim)
        if m is None:
            self.index = faiss.IndexIVFFlat(self.quantizer, self.dim, self.nlist,
                                            faiss.METRIC_INNER_PRODUCT)
            size = POINTS_PER_CENTROID * self.nlist
        else:
            self.index = faiss.IndexIVFPQ(self.quantizer, self.dim, self.nlist, int(m), self.bits,
                                          faiss.METRIC_INNER_PRODUCT)
            size = POINTS_PER_CENTROID * max(self.nlist, 2 ** self.bits)
        self.index.cp.seed = seed
        with faiss_threads(self.threads):
            self.index.train(training_sample(vectors, size, seed))
            _add(self.index, vectors)
        self._finish(t0)
        self._mapped = False

    def _direct_map(self) -> None:
        if not self._mapped:
            self.index.make_direct_map()
            self._mapped = True

    def take(self, rows: np.ndarray) -> np.ndarray:
        self._direct_map()
        return super().take(rows)

    def replace(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        self._direct_map()
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        with faiss_threads(self.threads):
            self.index.update_vectors(rows, np.ascontiguousarray(np.atleast_2d(vectors), np.float32))
