"""Exact k-NN retrieval, blocked so that memory stays bounded.

Scores are inner products. Cosine similarity is the inner product on unit-norm records (queries
need no normalising: a positive scale does not change a query's ranking). NUDGE-M outputs are not
unit norm and are searched with the plain inner product, as the method requires.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

#: Records per block for searches and row normalisation (64k x 384 float32 = 96 MiB).
BLOCK_ROWS = 65536


def row_norms(x: np.ndarray) -> np.ndarray:
    """(n,) Euclidean norms of the rows of ``x`` (n, d), in x's float type (4x faster than
    ``np.linalg.norm(x, axis=1)``)."""
    return np.sqrt(np.einsum("ij,ij->i", x, x))


#: normalize_rows splits inputs of at least this many elements across threads: numpy's elementwise
#: kernels run on one core but release the GIL, and one core does not saturate memory bandwidth
#: (SciFact's 5,183 x 384 corpus: 2.7 ms on one thread, 1.6 ms on two, cold caches).
THREADED_MIN_ELEMS = 2 ** 20
_POOL_LOCK = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _forget_pool() -> None:
    """In a forked child the pool object survives but its threads do not: start a new one."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _threads() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cpus or 1))


def _run_chunks(fn, n_rows: int, n_elems: int) -> None:
    """Call ``fn(start, stop)`` over [0, n_rows) in contiguous chunks, on worker threads if large.

    The caller's ``np.errstate`` applies in every chunk. Returns (or raises the first error) only
    once every chunk has finished, so nothing writes into the caller's arrays afterwards.
    """
    n = _threads() if n_elems >= THREADED_MIN_ELEMS else 1
    bounds = np.linspace(0, n_rows, n + 1).astype(int)
    if n == 1:
        fn(0, n_rows)
        return
    global _pool
    with _POOL_LOCK:
        if _pool is None:
            _pool = ThreadPoolExecutor(n - 1, thread_name_prefix="nudge-rows")
        pool = _pool
    err = np.geterr()

    def chunk(a: int, b: int) -> None:
        with np.errstate(**err):
            fn(a, b)

    futures = [pool.submit(chunk, a, b) for a, b in zip(bounds[1:-1], bounds[2:])]
    try:
        fn(0, bounds[1])  # this thread takes the first chunk
    finally:
        wait(futures)
    for f in futures:
        f.result()


#: Rows whose float32 norm falls outside this range are normalised in float64: their squares
#: would overflow (components >~ 1e19) or lose precision as subnormals (components <~ 1e-19).
SAFE_NORMS = (1e-15, 1e15)


def normalize_rows(x: np.ndarray, out: np.ndarray | None = None,
                   block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """Unit-norm copy of ``x`` (n, d) as float32, computed block by block.

    Every non-zero finite row is divided by its own norm, whatever its scale: rows whose float32
    norm is outside :data:`SAFE_NORMS` are recomputed in float64, so scaling a row by any finite
    non-zero factor gives the same unit vector (to float32 rounding). Zero rows stay zero. (No
    1e-12 floor as in ``torch.nn.functional.normalize``: with it, a row of norm 1e-20 stayed
    near zero and cosine results changed with the data's scale.) ``x`` may be a read-only memory
    map; ``out`` may be ``x`` itself when it is writable. Large blocks are split across a few
    threads (the result does not depend on how).
    """
    if hasattr(x, "unit_view"):  # a whole unit-norm copy of an out-of-core corpus: never
        raise TypeError("a sharded corpus is normalised as it is read: use its unit_view()")
    if out is None:
        out = np.empty(x.shape, dtype=np.float32)
    low, high = SAFE_NORMS

    def rows(start: int, stop: int) -> None:
        block = np.asarray(x[start:stop], dtype=np.float32)
        norms = row_norms(block)
        target = out[start:stop]
        np.divide(block, np.where(norms > 0, norms, 1)[:, None], out=target)  # zero rows stay 0
        unsafe = ~((norms >= low) & (norms <= high))
        if unsafe.any():
            exact = np.asarray(x[start:stop][unsafe], dtype=np.float64)
            n64 = np.sqrt(np.einsum("ij,ij->i", exact, exact))[:, None]
            target[unsafe] = np.divide(exact, n64, out=np.zeros_like(exact), where=n64 > 0)

    for start in range(0, x.shape[0], block_rows):
        stop = min(start + block_rows, x.shape[0])
        _run_chunks(lambda a, b: rows(start + a, start + b), stop - start,
                    (stop - start) * (x.shape[1] if x.ndim > 1 else 1))
    return out


#: Score-matrix budget of one search step, in elements (n_queries x columns): 16M float32 = 64 MiB,
#: plus argpartition's int64 index array of the same shape (128 MiB) when k > 1.
SCORE_BLOCK_ELEMS = 2 ** 24


def _block_topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Unordered top-``k`` (values, column indices) of each row of ``scores`` (n, m), k <= m."""
    if k == 1:
        cols = scores.argmax(axis=1)[:, None]
    elif k >= scores.shape[1]:
        cols = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    else:
        cols = np.argpartition(scores, -k, axis=1)[:, -k:]
    return np.take_along_axis(scores, cols, axis=1), cols


def _merge(best_scores: np.ndarray, best_rows: np.ndarray, scores: np.ndarray, start: int,
           k: int) -> tuple[np.ndarray, np.ndarray]:
    """The (unordered) best ``k`` of a running best (n, j) and a score block (n, m) whose column c
    is record row ``start + c``."""
    top, cols = _block_topk(scores, min(k, scores.shape[1]))
    scores = np.concatenate([best_scores, top], axis=1)
    rows = np.concatenate([best_rows, cols + start], axis=1)
    keep = _block_topk(scores, min(k, scores.shape[1]))[1]
    return np.take_along_axis(scores, keep, axis=1), np.take_along_axis(rows, keep, axis=1)


def search(queries: np.ndarray, base: np.ndarray, k: int, exclude: np.ndarray | None = None,
           block_rows: int = BLOCK_ROWS, excluded_scores: bool = False):
    """Top-``k`` inner-product neighbours of each query in ``base``, exactly.

    queries: (n_queries, d) float32; base: (n_records, d) float32, possibly memory-mapped.
    ``exclude``: record rows never returned. Returns ``(scores, rows)``, both (n_queries, k),
    best first; when fewer than ``k`` records are eligible the tail holds row -1 and score -inf.
    With ``excluded_scores=True`` a third array follows: (n_queries, n_excluded) float32, the
    queries' inner products with the excluded rows in ``np.unique(exclude)`` order, read off the
    same GEMM (NUDGE rescores exactly those records for every γ, so it needs them anyway).

    One GEMM per block (numpy's BLAS), excluded columns set to -inf, each block's top ``k`` merged
    into the running best, for the queries with a score above their running k-th best only. This is what ``faiss.knn_inner_product`` computes (the tests check the
    two agree), done in numpy because on the 2-core Xeon this was measured on faiss-cpu was the
    bottleneck: with an ``IDSelector`` it falls back to a one-pair-at-a-time kernel (95% of a
    100k-record fit), its bundled OpenBLAS runs a generic SSE3 kernel on an unrecognised CPU (4x
    slower GEMM than numpy's), and its OpenMP threads spin after each call, slowing the BLAS
    calls that follow (``benchmarks/bench_engine.py``).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    nq = queries.shape[0]
    best_scores = np.full((nq, 0), -np.inf, dtype=np.float32)
    best_rows = np.full((nq, 0), -1, dtype=np.int64)
    excluded = None
    if exclude is not None:
        excluded = np.asarray(exclude, dtype=np.int64).ravel()
        if np.any(excluded[1:] <= excluded[:-1]):  # sort unless already sorted and distinct
            excluded = np.unique(excluded)
    if excluded_scores:
        if excluded is None or (len(excluded) and not 0 <= excluded[0] <= excluded[-1] < len(base)):
            raise ValueError("excluded_scores=True needs exclude, with rows inside the base")
        kept = np.empty((nq, len(excluded)), dtype=np.float32)
    step = max(1, min(block_rows, SCORE_BLOCK_ELEMS // max(nq, 1)))
    for start in range(0, base.shape[0], step):
        block = np.asarray(base[start:start + step], dtype=np.float32)
        nb = block.shape[0]
        scores = queries @ block.T
        if excluded is not None:
            lo, hi = np.searchsorted(excluded, [start, start + nb])
            if excluded_scores:
                kept[:, lo:hi] = scores[:, excluded[lo:hi] - start]
            scores[:, excluded[lo:hi] - start] = -np.inf
        if best_scores.shape[1] < k:  # the running best is not full yet: every query merges
            best_scores, best_rows = _merge(best_scores, best_rows, scores, start, k)
            continue
        # only queries with a score above their current k-th best can change (a few percent of
        # them per block once the scan is past the first k * step rows); which of several records
        # tied at the k-th place is kept stays arbitrary, as before
        hit = np.flatnonzero((scores > best_scores.min(axis=1)[:, None]).any(axis=1))
        if len(hit):
            best_scores[hit], best_rows[hit] = _merge(best_scores[hit], best_rows[hit],
                                                      scores[hit], start, k)
    # best first, equal scores in row order (which of several tied records make the cut is arbitrary)
    order = np.lexsort((best_rows, -best_scores), axis=1)
    scores = np.full((nq, k), -np.inf, dtype=np.float32)
    rows = np.full((nq, k), -1, dtype=np.int64)
    found = best_scores.shape[1]
    scores[:, :found] = np.take_along_axis(best_scores, order, axis=1)
    rows[:, :found] = np.take_along_axis(best_rows, order, axis=1)
    rows[np.isneginf(scores)] = -1
    return (scores, rows, kept) if excluded_scores else (scores, rows)


def merge_topk(scores_a: np.ndarray, rows_a: np.ndarray, scores_b: np.ndarray,
               rows_b: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` best of two candidate lists per query, best first.

    scores_*: (n_queries, m_*); rows_*: the same shape, or (m_*,) shared by every query, holding
    record indices (row -1 has score -inf and
    never beats a real record). Exact ties at the k-th place are broken arbitrarily.
    """
    def best(scores: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.broadcast_to(rows, scores.shape)
        if k >= scores.shape[1]:
            return scores, rows
        top, cols = _block_topk(scores, k)
        return top, np.take_along_axis(rows, cols, axis=1)

    (sa, ra), (sb, rb) = best(scores_a, rows_a), best(scores_b, rows_b)
    scores = np.concatenate([sa, sb], axis=1)
    rows = np.concatenate([ra, rb], axis=1)
    if k == 1 and scores.shape[1]:
        return np.take_along_axis(rows, scores.argmax(axis=1)[:, None], axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :min(k, scores.shape[1])]
    return np.take_along_axis(rows, order, axis=1)
