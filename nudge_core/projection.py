"""2-D maps of records before and after fine-tuning, in one aligned frame.

The map is fitted on the *original* (unit-norm) record embeddings only; the moved records' new
embeddings and the queries are then placed with the same fitted mapping (UMAP's ``transform``, or
the same linear map for PCA). Every unmoved record therefore keeps its place, and an arrow from a
record's old to its new position shows where fine-tuning pushed it relative to the fixed landscape.
A joint fit of before+after would let the whole map drift and make the arrows meaningless; two
separate fits would need an alignment step that distorts small moves. Both maps take unit-length
vectors (every record and query divided by its length; PCA's distances between them order pairs as
cosine similarity does, UMAP uses the cosine metric), so a map shows changes of direction only:
NUDGE-M's change of length must be drawn separately (the app colours moved records by it).
:func:`why_moved` lists what pulled one record and how its similarities and ranks changed.

UMAP (umap-learn) compiles numba code on its first use in a process; :func:`start_warm_up` runs
that once in a background thread. :data:`UMAP_LOCK` keeps two UMAP runs from overlapping.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .data import QuerySet
from .progress import Progress
from .retrieval import BLOCK_ROWS, normalize_rows, row_norms

#: Held while a UMAP fit/transform runs: numba-parallel UMAPs must not overlap.
UMAP_LOCK = threading.Lock()
#: Above this many records the map is fitted on a random subsample (moved records always kept).
DEFAULT_MAX_POINTS = 50000
PROJECTIONS = ("umap", "pca")


#: Warm-up state shared by the process: status "idle" | "running" | "done" | "failed".
WARM_UP: dict = {"status": "idle", "seconds": None, "error": None, "started": None}
_WARM_LOCK = threading.Lock()


def cache_compiled_code() -> int:
    """Make numba keep umap's (and pynndescent's) compiled code on disk; returns how many
    functions it newly applies to. Call after ``import umap``, before the first fit.

    umap-learn marks one of its numba functions ``cache=True``, so every new process compiled the
    rest again (1.5-8 minutes on a busy server). Each jitted function of their loaded modules is
    asked to cache in numba's cache folder ($NUMBA_CACHE_DIR, which ``app.py`` points at a
    per-user folder before numba is imported); numba keys each entry by the source file's
    modification time and the function's signature, so an upgraded package recompiles.

    This leans on numba internals (``numba.core.caching.NullCache``, a dispatcher's ``_cache``):
    when a numba release moves them, nothing is cached (returns 0) and UMAP compiles as before,
    rather than the map failing."""
    import sys
    import warnings

    try:
        from numba.core.caching import NullCache
        from numba.core.errors import NumbaWarning
        from numba.core.registry import CPUDispatcher
    except ImportError:
        return 0

    # a few use global arrays and cannot be cached: numba then compiles them as before
    warnings.filterwarnings("ignore", message="Cannot cache compiled function",
                            category=NumbaWarning)

    done = 0
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in ("umap", "pynndescent"):
            continue
        for obj in list(vars(module).values()):
            if isinstance(obj, CPUDispatcher) and isinstance(getattr(obj, "_cache", None), NullCache):
                try:
                    obj.enable_caching()
                except Exception:  # noqa: BLE001 - an internal that moved: compile as before
                    continue
                done += 1
    return done


def warm_up(n: int = 4200, dim: int = 8) -> float:
    """Compile UMAP's numba code with a small fit + transform; returns the seconds it took.

    ``n`` >= 4096 so that UMAP takes its approximate-neighbour (pynndescent) path, the one real
    corpora take, and compiles that."""
    with _WARM_LOCK:
        if WARM_UP["status"] == "done":
            return float(WARM_UP["seconds"] or 0.0)
        WARM_UP.update(status="running", started=time.time())
    t0 = time.perf_counter()
    try:
        import umap

        cache_compiled_code()
        x = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
        with UMAP_LOCK:
            model = umap.UMAP(n_neighbors=15, metric="cosine", random_state=0, n_epochs=10,
                              low_memory=True).fit(x)
            model.transform(x[:20] + 0.01)
    except Exception as exc:  # reported by the app; a later real run raises it properly
        WARM_UP.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    seconds = time.perf_counter() - t0
    WARM_UP.update(status="done", seconds=seconds)
    return seconds


def start_warm_up() -> bool:
    """Start :func:`warm_up` in a daemon thread once per process; True if this call started it."""
    with _WARM_LOCK:
        if WARM_UP["status"] != "idle":
            return False
        WARM_UP["status"] = "starting"

    def run() -> None:
        try:
            warm_up()
        except Exception:
            pass

    threading.Thread(target=run, name="umap-warm-up", daemon=True).start()
    return True


def pull_counts(train: QuerySet, n_records: int) -> np.ndarray:
    """(n_records,) int: how many training queries judge each record relevant."""
    counts = np.zeros(n_records, dtype=np.int64)
    for ans in train.answers:
        np.add.at(counts, np.unique(ans), 1)
    return counts


@dataclass
class Layout:
    """An aligned 2-D frame.

    ``rows`` (n_shown,) record rows placed by the fit, ``xy`` (n_shown, 2) their positions;
    ``moved_rows`` (m,) rows that moved, ``before``/``after`` (m, 2) their old/new positions;
    ``queries[name]`` (n_q, 2) query positions; ``subsampled`` True when not every record is shown.
    """

    method: str
    rows: np.ndarray
    xy: np.ndarray
    moved_rows: np.ndarray
    before: np.ndarray
    after: np.ndarray
    queries: dict[str, np.ndarray] = field(default_factory=dict)
    subsampled: bool = False
    seconds: float = 0.0


def sample_rows(n_records: int, keep: np.ndarray, max_points: int, seed: int = 0) -> np.ndarray:
    """Sorted record rows to fit on: all when n_records <= max_points, else every ``keep`` row
    plus a seeded random sample of the rest up to ``max_points`` in total."""
    if n_records <= max_points:
        return np.arange(n_records)
    keep = np.unique(np.asarray(keep, dtype=np.int64))
    rest = np.setdiff1d(np.arange(n_records), keep)
    extra = max(0, max_points - len(keep))
    picked = np.random.default_rng(seed).choice(rest, size=min(extra, len(rest)), replace=False)
    return np.sort(np.concatenate([keep, picked]))


class _Pca:
    def __init__(self, x: np.ndarray) -> None:
        self.mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        self.components = vt[:2]

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) @ self.components.T


def compute_layout(originals: np.ndarray, moved_rows: np.ndarray, moved_emb: np.ndarray,
                   queries: dict[str, np.ndarray] | None = None, *, method: str = "umap",
                   max_points: int = DEFAULT_MAX_POINTS, seed: int = 0, n_neighbors: int = 15,
                   n_epochs: int | None = None, progress: Progress | None = None) -> Layout:
    """Fit a 2-D map on ``originals`` (n, d) (normalised here), place ``moved_emb`` (m, d) — the
    new embeddings of records ``moved_rows`` — and each query set with the same mapping."""
    if method not in PROJECTIONS:
        raise ValueError(f"method must be one of {PROJECTIONS}, got {method!r}")
    report = progress or (lambda f, m: None)
    t0 = time.perf_counter()
    moved_rows = np.asarray(moved_rows, dtype=np.int64)
    rows = sample_rows(originals.shape[0], moved_rows, max_points, seed)
    x = normalize_rows(np.asarray(originals[rows]))
    after_in = (normalize_rows(moved_emb) if len(moved_rows)
                else np.zeros((0, x.shape[1]), np.float32))
    query_in = {name: normalize_rows(q) for name, q in (queries or {}).items()
                if q is not None and len(q)}
    report(0.05, f"fitting {method.upper()} on {len(rows):,} original records")
    if method == "pca":
        model = _Pca(x)
        xy = model.transform(x)
        place = model.transform
    else:
        import umap

        cache_compiled_code()
        with UMAP_LOCK:
            model = umap.UMAP(n_neighbors=min(n_neighbors, max(2, len(rows) - 1)), metric="cosine",
                              random_state=seed, n_epochs=n_epochs, low_memory=True)
            xy = model.fit_transform(x)
        def place(y: np.ndarray) -> np.ndarray:
            with UMAP_LOCK:
                return model.transform(y)
    report(0.7, f"placing {len(moved_rows):,} moved records and the queries with the same map")
    position = {int(r): i for i, r in enumerate(rows)}
    before = xy[[position[int(r)] for r in moved_rows]] if len(moved_rows) else np.zeros((0, 2))
    after = place(after_in) if len(moved_rows) else np.zeros((0, 2))
    placed = {name: np.asarray(place(q)) for name, q in query_in.items()}
    report(1.0, "done")
    return Layout(method, rows, np.asarray(xy, dtype=np.float32), moved_rows,
                  np.asarray(before, dtype=np.float32), np.asarray(after, dtype=np.float32),
                  placed, bool(len(rows) < originals.shape[0]), time.perf_counter() - t0)


def positions(layout: Layout, rows, after: bool = False) -> np.ndarray:
    """(n, 2) map positions of record ``rows`` — their new place when ``after`` and they moved —
    skipping rows left out by subsampling."""
    where = {int(r): i for i, r in enumerate(layout.rows)}
    moved = {int(r): i for i, r in enumerate(layout.moved_rows)}
    out = []
    for r in np.asarray(rows).ravel():
        r = int(r)
        if after and r in moved:
            out.append(layout.after[moved[r]])
        elif r in where:
            out.append(layout.xy[where[r]])
    return np.array(out, dtype=np.float32).reshape(-1, 2)


@dataclass
class WhyMoved:
    """Why record ``row`` moved. ``shift``: ‖e − v‖ (v its unit original, e its new vector);
    ``norm_before`` / ``norm_after``: ‖v‖ (1) and ‖e‖ (NUDGE-M lengthens, NUDGE-N keeps 1);
    per pulling training query (positions ``query_pos`` in the training set, ids ``query_ids``):
    cosine similarity ``cos_before`` / ``cos_after`` to v / e, and the record's rank for that
    query ``rank_before`` / ``rank_after`` (1 = first) among all records as each index scores
    them (inner product on the vectors it holds; ties counted in the record's favour)."""

    row: int
    shift: float
    norm_before: float
    norm_after: float
    query_pos: np.ndarray
    query_ids: list[str]
    cos_before: np.ndarray
    cos_after: np.ndarray
    rank_before: np.ndarray
    rank_after: np.ndarray


def pulling_queries(train: QuerySet, row: int) -> np.ndarray:
    """Positions in ``train`` of the training queries that judge record ``row`` relevant (the
    queries whose sum is the record's pull), in ``train``'s order: from :meth:`QuerySet.pairs`."""
    queries, rows = train.pairs()
    return queries[rows == row]


def blocks(vectors, block_rows: int = BLOCK_ROWS):
    """``(start, (m, d) float32 block)`` over the rows of ``vectors`` (an array, a memory map or a
    sharded corpus's view): what lets a whole-corpus scan hold one block at a time."""
    for start in range(0, vectors.shape[0], block_rows):
        yield start, np.asarray(vectors[start:start + block_rows], dtype=np.float32)


def rank_of(row: int, queries: np.ndarray, vectors, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """(p,) rank (1 = first) of record ``row`` for each of ``queries`` (p, d) among all rows of
    ``vectors`` (n, d) by inner product, ties counted in the record's favour; block by block, the
    record's own score read off the same product as its block's rivals."""
    lo = row // block_rows * block_rows
    own = queries @ np.asarray(vectors[lo:lo + block_rows], dtype=np.float32).T
    target = own[:, row - lo:row - lo + 1]
    above = np.zeros(len(queries), np.int64)
    for start in range(0, vectors.shape[0], block_rows):
        scores = own if start == lo else \
            queries @ np.asarray(vectors[start:start + block_rows], dtype=np.float32).T
        above += (scores > target).sum(axis=1)
    return 1 + above


def why_moved(row: int, before: np.ndarray, after: np.ndarray, train: QuerySet,
              max_queries: int = 50) -> WhyMoved:
    """The pulls behind record ``row``'s move: ``before`` / ``after`` (n, d) are the record
    vectors searched without / with fine-tuning (e.g. ``MethodResult.embeddings``), ``train``
    the training queries. Ranks cost one (n, d) product per pulling query (at most
    ``max_queries`` listed), computed block by block (:func:`rank_of`), so an out-of-core corpus
    is read once per vector set and never held whole."""
    if not 0 <= row < before.shape[0]:
        raise ValueError(f"record row {row} is outside 0..{before.shape[0] - 1}")
    pos = pulling_queries(train, row)[:max_queries]
    q = np.asarray(train.emb[pos], dtype=np.float32).reshape(-1, before.shape[1])
    v, e = np.asarray(before[row], np.float32), np.asarray(after[row], np.float32)
    qn = np.maximum(row_norms(q), 1e-12)
    rank_b, rank_a = rank_of(row, q, before), rank_of(row, q, after)
    nv, ne = float(np.linalg.norm(v)), float(np.linalg.norm(e))
    return WhyMoved(int(row), float(np.linalg.norm(e - v)), nv, ne, pos,
                    [train.ids[j] for j in pos], (q @ v) / (qn * max(nv, 1e-12)),
                    (q @ e) / (qn * max(ne, 1e-12)), rank_b, rank_a)
