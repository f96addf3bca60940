"""Out-of-core search over a :class:`~nudge_core.shards.ShardedCorpus`: shard by shard, top-k merged.

:class:`ShardedIndex` is what NUDGE and the baseline fit on when the corpus is sharded: an
array-like (n, d) view of the *unit-norm* records (each shard normalised as it is read, never
stored) that also implements the :class:`~nudge_core.index.Index` protocol. Rows NUDGE moves are
kept aside in a small overlay (the active set), so "writing" the fine-tuned records costs
nothing until :meth:`ShardedIndex.write` materialises them shard by shard into a new folder.

Why results equal the in-memory path: each shard is searched by the same blocked
:func:`~nudge_core.retrieval.search` (normalisation is per row, so it does not depend on where a
shard starts), every shard keeps its own top k, and the merge keeps the best k of all of them,
best first with equal scores in row order, as the in-memory search orders them. Overlay rows are
excluded from the shard searches and scored from their stored vectors.

Memory: one block of mapped pages (released after each block, :func:`_release`), one block of
normalised rows and one score block at a time, plus the overlay and the (n_queries, k) results
per shard; nothing but the per-shard results list grows with n. The shard-level work is
:func:`search_shard` and :func:`write_shard`, plain functions of file paths and small arrays,
run one after the other here or by Dask (:mod:`nudge_core.dask_backend`).
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np

from .errors import DataError
from .retrieval import BLOCK_ROWS, normalize_rows, search


class _UnitShard:
    """Rows of a memory-mapped shard, checked and normalised block by block as they are sliced."""

    def __init__(self, mm: np.ndarray, source: str, normalize: bool) -> None:
        self.mm, self.source, self.normalize = mm, source, normalize
        self.shape = mm.shape

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: slice) -> np.ndarray:
        block = np.array(self.mm[key], dtype=np.float32)
        _release(self.mm, *key.indices(self.shape[0])[:2])
        finite = np.isfinite(block).all(axis=1)
        nonzero = (block != 0).any(axis=1)
        start = key.indices(self.shape[0])[0]
        if not finite.all():
            raise DataError("contains NaN or infinite values; every record embedding value must be "
                            "finite", self.source, row=start + int(np.argmin(finite)))
        if not nonzero.all():
            raise DataError("is an all-zero vector; record embeddings need a direction", self.source,
                            row=start + int(np.argmin(nonzero)))
        return normalize_rows(block) if self.normalize else block


def _release(mm: np.ndarray, start: int, stop: int) -> None:
    """Drop the mapped pages of rows [start, stop) of ``mm`` from this process (they stay in the
    page cache): read-only file pages would otherwise count in the resident set until the whole
    shard is unmapped, so a large shard would hold its size in RSS."""
    raw = getattr(mm, "_mmap", None)
    if raw is None or not hasattr(raw, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    row_bytes = mm.shape[1] * mm.itemsize
    base = mm.offset % mmap.ALLOCATIONGRANULARITY  # where row 0 starts inside the mapping
    lo = (base + start * row_bytes) // mmap.PAGESIZE * mmap.PAGESIZE
    hi = base + stop * row_bytes
    if hi > lo:
        raw.madvise(mmap.MADV_DONTNEED, lo, min(hi - lo, len(raw) - lo))


def _load(path: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the shard ({exc})", path) from None


def search_shard(path: str, offset: int, queries: np.ndarray, k: int, exclude: np.ndarray,
                 normalize: bool, want_excluded: bool):
    """Top ``k`` of one shard for ``queries`` (n_q, d) float32: (scores, global rows[, kept]).

    ``exclude``: sorted global rows never returned; with ``want_excluded`` also the queries'
    scores against the excluded rows that fall in this shard, in row order (n_q, n_in_shard).
    """
    mm = _load(path)
    base = _UnitShard(mm, path, normalize)
    local = exclude[(exclude >= offset) & (exclude < offset + len(base))] - offset
    k = min(k, len(base))
    out = search(queries, base, k, exclude=local, excluded_scores=want_excluded)
    rows = out[1]
    rows[rows >= 0] += offset
    return out


def take_shard(path: str, offset: int, rows: np.ndarray, normalize: bool) -> np.ndarray:
    """(len(rows), d) float32 of the global ``rows`` (all inside this shard), normalised if asked."""
    from .shards import read_rows

    block = read_rows(path, np.asarray(rows, np.int64) - offset)
    return normalize_rows(block) if normalize else block


def write_shard(path: str, offset: int, target: str, normalize: bool, rows: np.ndarray,
                vectors: np.ndarray) -> str:
    """Write shard ``path`` (normalised if asked) to ``target`` with global ``rows`` replaced by
    ``vectors``; block by block into a memory-mapped ``.npy``. Returns ``target``."""
    mm = _load(path)
    base = _UnitShard(mm, path, normalize)
    out = np.lib.format.open_memmap(target + ".part", mode="w+", dtype=np.float32, shape=mm.shape)
    for a in range(0, len(base), BLOCK_ROWS):
        out[a:a + BLOCK_ROWS] = base[a:a + BLOCK_ROWS]
    inside = (rows >= offset) & (rows < offset + len(base))
    out[rows[inside] - offset] = vectors[inside]
    out.flush()
    del out
    os.replace(target + ".part", target)
    return target


def topk_sorted(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (scores, rows) of candidate lists (n_q, m), best first, equal scores in row
    order, padded with -inf / -1 (the order :func:`retrieval.search` returns)."""
    nq = scores.shape[0]
    order = np.lexsort((rows, -scores), axis=1)[:, :k]
    out_s = np.full((nq, k), -np.inf, np.float32)
    out_r = np.full((nq, k), -1, np.int64)
    m = order.shape[1]
    out_s[:, :m] = np.take_along_axis(scores, order, axis=1)
    out_r[:, :m] = np.take_along_axis(rows, order, axis=1)
    out_r[np.isneginf(out_s)] = -1
    return out_s, out_r


def _digest(queries: np.ndarray) -> str:
    import hashlib

    q = np.ascontiguousarray(queries, dtype=np.float32)
    return hashlib.sha256(memoryview(q).cast("B")).hexdigest() + str(q.shape)


class SharedScan:
    """One pass over the shards for one query set, serving several views of the same corpus
    (:func:`share_scan`): the base top ``k`` without the rows ``union`` (every view's overlay
    rows), and the queries' base scores of ``union`` (n_q, len(union)), read off the same GEMM."""

    def __init__(self, source, digest: str, k: int, union: np.ndarray, scores: np.ndarray,
                 rows: np.ndarray, kept: np.ndarray) -> None:
        self.source = source  # (corpus, normalize) it was read from: only such views may use it
        self.digest, self.k, self.union = digest, k, union
        self.scores, self.rows, self.kept = scores, rows, kept


def share_scan(views: list, queries: np.ndarray, k: int) -> None:
    """Search the shards once for ``queries`` (n_q, d) and let each of ``views`` (ShardedIndex
    views of one corpus, differing only in their overlays) answer its own ``search(queries, k)``
    from that pass. Evaluating no fine-tuning and NUDGE on a sharded corpus then reads the corpus
    once per query set instead of once per method; the results are the ones each view's own pass
    gives (the same GEMM blocks score every row; ``tests/test_outofcore.py``)."""
    if not views:
        return
    first = views[0]
    if any(v.corpus is not first.corpus or v.normalize != first.normalize for v in views):
        raise ValueError("share_scan needs views of one corpus, all normalised or all not")
    union = np.unique(np.concatenate([v.over_rows for v in views]))
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    scores, rows, kept = first._pass(queries, k, union)
    scores, rows = topk_sorted(scores, rows, k)
    scan = SharedScan((first.corpus, first.normalize), _digest(queries), k, union, scores, rows, kept)
    for v in views:
        v.scan = scan


class LocalBackend:
    """Runs shard tasks one after the other in this process (the default backend)."""

    def map(self, fn, *iterables, broadcast: dict | None = None, progress=None) -> list:
        """``fn`` over the zipped ``iterables`` in order; ``progress(done, total)`` after each."""
        tasks = list(zip(*iterables))
        out = []
        for args in tasks:
            out.append(fn(*args, **(broadcast or {})))
            if progress is not None:
                progress(len(out), len(tasks))
        return out


class ShardedIndex:
    """Unit-norm (or as stored) view of a sharded corpus + an overlay of replaced rows.

    Array-like (``shape``, ``ndim``, ``dtype``, row slicing and fancy indexing, item assignment
    into the overlay, ``copy``) so the engine's fits and :class:`~nudge_core.index.ExactIndex` run
    on it unchanged, and an :class:`~nudge_core.index.Index` (``search``, ``take``, ``replace``).
    ``backend``: anything with ``map(fn, *iterables, broadcast=..., progress=...)``
    (:class:`LocalBackend`, :class:`~nudge_core.dask_backend.DaskBackend`). ``on_shard``: None or
    ``callable(done, total)``, called as each shard of a search or write finishes (copies share it;
    the app and the CLI show it as progress per shard).
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, corpus, normalize: bool = True, backend=None) -> None:
        self.corpus = corpus
        self.normalize = normalize
        self.backend = backend or LocalBackend()
        self.n, self.dim = corpus.shape
        self.over_rows = np.zeros(0, np.int64)
        self.over_vecs = np.zeros((0, self.dim), np.float32)
        self.on_shard = None
        self.scan = None  # a SharedScan this view may answer a search from (share_scan)

    @property
    def shape(self) -> tuple[int, int]:
        return self.n, self.dim

    @property
    def vectors(self) -> "ShardedIndex":
        return self

    def __len__(self) -> int:
        return self.n

    def copy(self) -> "ShardedIndex":
        """A view of the same shards with its own overlay (what a fit writes its moved rows into)."""
        other = ShardedIndex(self.corpus, self.normalize, self.backend)
        other.on_shard = self.on_shard
        other.over_rows, other.over_vecs = self.over_rows.copy(), self.over_vecs.copy()
        return other

    def _tasks(self):
        c = self.corpus
        return [str(p) for p in c.paths], [int(o) for o in c.offsets[:-1]]

    # --- reading rows -----------------------------------------------------------------------
    def take(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.int64).ravel()
        out = np.empty((len(rows), self.dim), np.float32)
        c = self.corpus
        which = np.searchsorted(c.offsets, rows, side="right") - 1
        for i in np.unique(which):
            sel = which == i
            out[sel] = take_shard(str(c.paths[i]), int(c.offsets[i]), rows[sel], self.normalize)
        pos = np.searchsorted(self.over_rows, rows)
        hit = (pos < len(self.over_rows)) & (self.over_rows[np.minimum(pos, len(self.over_rows) - 1)]
                                             == rows) if len(self.over_rows) else np.zeros(len(rows), bool)
        out[hit] = self.over_vecs[pos[hit]]
        return out

    def _slice(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) read as contiguous ranges of their shards (one pass per shard, pages
        released as read), overlay rows in place."""
        out = np.empty((max(stop - start, 0), self.dim), np.float32)
        for i, lo, hi, at in self.corpus.ranges(start, stop):
            path = str(self.corpus.paths[i])
            out[at:at + hi - lo] = _UnitShard(_load(path), path, self.normalize)[lo:hi]
        lo, hi = np.searchsorted(self.over_rows, [start, stop])
        out[self.over_rows[lo:hi] - start] = self.over_vecs[lo:hi]
        return out

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(self.n)
            return self._slice(start, stop) if step == 1 else self.take(np.arange(start, stop, step))
        rows = np.asarray(key)
        return self.take(rows.reshape(-1))[0] if rows.ndim == 0 else self.take(rows)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The whole (n, d) matrix in memory (small corpora only; :meth:`write` for large)."""
        out = self[0:self.n]
        return out if dtype is None else out.astype(dtype)

    # --- writing rows -----------------------------------------------------------------------
    def replace(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        rows = np.asarray(rows, np.int64).ravel()
        vectors = np.asarray(vectors, np.float32).reshape(len(rows), self.dim)
        keep = ~np.isin(self.over_rows, rows)
        all_rows = np.concatenate([self.over_rows[keep], rows])
        all_vecs = np.concatenate([self.over_vecs[keep], vectors])
        order = np.argsort(all_rows, kind="stable")
        self.over_rows, self.over_vecs = all_rows[order], all_vecs[order]

    def __setitem__(self, key, vectors) -> None:
        self.replace(np.arange(*key.indices(self.n)) if isinstance(key, slice) else key, vectors)

    # --- search -----------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None,
               excluded_scores: bool = False):
        """As :meth:`nudge_core.index.Index.search`, shard by shard on the backend."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if (self.scan is not None and exclude is None and not excluded_scores and k <= self.scan.k
                and self.scan.source[0] is self.corpus and self.scan.source[1] == self.normalize
                and self.scan.digest == _digest(queries)
                and np.isin(self.over_rows, self.scan.union).all()):
            return self._from_scan(queries, k)
        excl = np.unique(np.asarray(exclude, np.int64)) if exclude is not None else np.zeros(0, np.int64)
        if excluded_scores and (exclude is None or (len(excl) and not 0 <= excl[0] <= excl[-1] < self.n)):
            raise ValueError("excluded_scores=True needs exclude, with rows inside the base")
        skip = np.union1d(excl, self.over_rows)
        base_scores, base_rows, kept_all = self._pass(queries, k, skip)  # kept_all: `skip`'s scores
        free = ~np.isin(self.over_rows, excl)  # overlay rows that compete
        over_scores = queries @ self.over_vecs.T
        scores = np.concatenate([base_scores, over_scores[:, free]], axis=1)
        rows = np.concatenate([base_rows, np.broadcast_to(self.over_rows[free],
                                                          (len(queries), int(free.sum())))], axis=1)
        top = topk_sorted(scores, rows, k)
        if not excluded_scores:
            return top
        kept = kept_all[:, np.searchsorted(skip, excl)]
        in_over = np.isin(excl, self.over_rows)
        if in_over.any():
            kept[:, in_over] = over_scores[:, np.searchsorted(self.over_rows, excl[in_over])]
        return (*top, kept)

    def _pass(self, queries: np.ndarray, k: int, skip: np.ndarray):
        """One pass over the shards on the backend: every shard's top ``k`` for ``queries``
        without the sorted global rows ``skip``, side by side ((n_q, k * shards) scores and rows,
        unmerged), and the queries' scores of ``skip`` in its order (n_q, len(skip))."""
        paths, offsets = self._tasks()
        parts = self.backend.map(search_shard, paths, offsets, broadcast=dict(
            queries=queries, k=k, exclude=skip, normalize=self.normalize, want_excluded=True),
            progress=self.on_shard)
        return tuple(np.concatenate([p[j] for p in parts], axis=1) for j in range(3))

    def _from_scan(self, queries: np.ndarray, k: int):
        """:meth:`search` answered from :attr:`scan`: its base top k, the base scores of the
        union's rows this view did not move, and this view's overlay rows scored here."""
        scan = self.scan
        unmoved = ~np.isin(scan.union, self.over_rows)
        nq = len(queries)
        scores = np.concatenate([scan.scores, scan.kept[:, unmoved], queries @ self.over_vecs.T],
                                axis=1)
        rows = np.concatenate([scan.rows, np.broadcast_to(scan.union[unmoved], (nq, int(unmoved.sum()))),
                               np.broadcast_to(self.over_rows, (nq, len(self.over_rows)))], axis=1)
        return topk_sorted(scores, rows, k)

    def write(self, folder: str | Path):
        """Write the (n, d) records this view holds (shards normalised if so, overlay rows in
        place) as a new shard folder, shard by shard; returns its
        :class:`~nudge_core.shards.ShardedCorpus`."""
        from .shards import MANIFEST, open_sharded
        import json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths, offsets = self._tasks()
        names = [f"shard-{i:05d}.npy" for i in range(len(paths))]
        self.backend.map(write_shard, paths, offsets, [str(folder / n) for n in names], broadcast=dict(
            normalize=self.normalize, rows=self.over_rows, vectors=self.over_vecs),
            progress=self.on_shard)
        (folder / MANIFEST).write_text(json.dumps(
            {"shards": [[n, r] for n, r in zip(names, self.corpus.rows)]}), encoding="utf-8")
        return open_sharded(folder)
