"""How far a 2-D movement map can be trusted, and an honest local picture of one moved record.

A map squeezes d dimensions into 2, so it keeps some neighbourhoods and invents others. For the
records fine-tuning moved, :func:`map_faithfulness` measures, before and after the move, the share
of each moved record's k nearest neighbours in the embedding space (cosine similarity, i.e.
direction: the space the maps are fitted in) that are also among its k nearest on the map
(Euclidean distance in 2-D). 1.0: the map keeps the record's neighbourhood; ``k / (n - 1)``: what
a random map would score. The neighbour searches are scikit-learn's exact ``NearestNeighbors``.

:func:`local_view` draws one moved record with the training queries that pull it and its nearest
neighbours before and after, projected by a PCA fitted on that small neighbourhood only: a linear
map of the actual vectors (lengths included), so the arrow's direction and relative length are
those of the real move, within the two directions that explain most of the neighbourhood.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import QuerySet
from .projection import Layout, blocks, pulling_queries
from .retrieval import normalize_rows, row_norms


@dataclass
class Faithfulness:
    """Neighbour preservation of one map for the moved records.

    ``rows`` (m,) the moved record rows measured (all moved rows on the map, or a seeded sample of
    ``max_records``); ``before`` / ``after`` (m,) each one's share of its ``k`` embedding-space
    neighbours that are also its ``k`` map neighbours, with every record at its old / new place;
    ``chance``: the share a random map would give, ``k / (n_shown - 1)``."""

    method: str
    k: int
    rows: np.ndarray
    before: np.ndarray
    after: np.ndarray
    chance: float

    @property
    def mean_before(self) -> float:
        return float(self.before.mean()) if len(self.before) else float("nan")

    @property
    def mean_after(self) -> float:
        return float(self.after.mean()) if len(self.after) else float("nan")


def _neighbours(points: np.ndarray, at: np.ndarray, k: int) -> np.ndarray:
    """(len(at), k) rows of ``points`` nearest (Euclidean) to ``points[at]``, each point itself
    left out."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute" if points.shape[1] > 3 else "auto")
    found = nn.fit(points).kneighbors(points[at], return_distance=False)
    out = np.empty((len(at), k), dtype=np.int64)
    for i, (row, hits) in enumerate(zip(at, found)):
        hits = hits[hits != row]  # itself, wherever ties put it
        out[i] = hits[:k]
    return out


def neighbour_overlap(high: np.ndarray, low: np.ndarray, at: np.ndarray, k: int) -> np.ndarray:
    """(len(at),) for each point ``at[i]``: |its k nearest in ``high`` (n, d) ∩ its k nearest in
    ``low`` (n, 2)| / k, both Euclidean, the point itself excluded."""
    at = np.asarray(at, dtype=np.int64)
    if len(at) == 0:
        return np.zeros(0)
    a, b = _neighbours(high, at, k), _neighbours(low, at, k)
    return np.array([len(np.intersect1d(x, y)) / k for x, y in zip(a, b)])


def map_faithfulness(layout: Layout, originals: np.ndarray, moved_emb: np.ndarray, *, k: int = 10,
                     max_records: int = 1000, seed: int = 0) -> Faithfulness:
    """Neighbour preservation of ``layout`` for its moved records, before and after the move.

    ``originals`` (n_records, d): the records as given (normalised here, as the map was);
    ``moved_emb`` (m, d): the new vectors of ``layout.moved_rows`` (normalised here: the map shows
    direction only, NUDGE-M's change of length is drawn separately). Only the records on the map
    (``layout.rows``) take part. At most ``max_records`` moved records are measured (a seeded
    sample), each costing one exact k-NN search in d and in 2 dimensions."""
    shown = np.asarray(layout.rows, dtype=np.int64)
    if len(shown) < k + 2:
        raise ValueError(f"k = {k} needs at least {k + 2} records on the map, it has {len(shown)}")
    where = np.searchsorted(shown, layout.moved_rows)  # layout.rows is sorted
    high = normalize_rows(np.asarray(originals[shown]))
    pick = np.arange(len(where))
    if len(pick) > max_records:
        pick = np.sort(np.random.default_rng(seed).choice(pick, max_records, replace=False))
    at = where[pick]
    before = neighbour_overlap(high, layout.xy, at, k)
    high_after, low_after = high.copy(), np.array(layout.xy, dtype=np.float32)
    if len(where):
        high_after[where] = normalize_rows(np.asarray(moved_emb, dtype=np.float32))
        low_after[where] = layout.after
    after = neighbour_overlap(high_after, low_after, at, k)
    return Faithfulness(layout.method, k, layout.moved_rows[pick], before, after,
                        k / (len(shown) - 1))


@dataclass
class LocalView:
    """One moved record's neighbourhood in 2-D (a PCA fitted on these vectors only).

    ``record`` before/after: (2,) each; ``queries`` (p, 2) the pulling training queries (positions
    ``query_pos`` in the training set); ``before_rows`` / ``after_rows`` (k,) its nearest records
    by cosine similarity before / after the move, at ``before_xy`` / ``after_xy`` (k, 2) (their own
    old / new places); ``explained``: the share of the neighbourhood's variance the 2 axes keep."""

    row: int
    record_before: np.ndarray
    record_after: np.ndarray
    query_pos: np.ndarray
    queries: np.ndarray
    before_rows: np.ndarray
    before_xy: np.ndarray
    after_rows: np.ndarray
    after_xy: np.ndarray
    explained: float


def _cosine_top(vectors, norms: np.ndarray | None, v: np.ndarray, k: int, skip: int) -> np.ndarray:
    """(k,) rows of ``vectors`` (n, d) most cosine-similar to ``v`` (d,), best first, ``skip``
    left out; block by block (:func:`~nudge_core.projection.blocks`), so an out-of-core corpus is
    never held whole. ``norms``: (n,) row norms if known (else computed per block)."""
    vn = float(np.linalg.norm(v))
    best_s, best_r = np.zeros(0, np.float32), np.zeros(0, np.int64)
    for start, block in blocks(vectors):
        bn = row_norms(block) if norms is None else norms[start:start + len(block)]
        sims = (block @ v) / np.maximum(bn * vn, 1e-12)
        if start <= skip < start + len(block):
            sims[skip - start] = -np.inf
        s = np.concatenate([best_s, sims])
        r = np.concatenate([best_r, np.arange(start, start + len(block))])
        keep = np.argpartition(-s, min(k, len(s) - 1))[:k] if len(s) > k else np.arange(len(s))
        best_s, best_r = s[keep], r[keep]
    return best_r[np.lexsort((best_r, -best_s))]


def local_view(row: int, before: np.ndarray, after: np.ndarray, train: QuerySet, *,
               k: int = 10, before_norms: np.ndarray | None = None,
               after_norms: np.ndarray | None = None) -> LocalView:
    """The local picture of record ``row``: ``before`` / ``after`` (n, d) the record vectors the
    search holds without / with fine-tuning (``*_norms`` (n,) their row norms, if already known);
    ``train`` the training queries. Vectors enter the PCA as they are, lengths included."""
    from sklearn.decomposition import PCA

    if not 0 <= row < before.shape[0]:
        raise ValueError(f"record row {row} is outside 0..{before.shape[0] - 1}")
    k = min(k, before.shape[0] - 1)
    nb = _cosine_top(before, before_norms, np.asarray(before[row], np.float32), k, row)
    na = _cosine_top(after, after_norms, np.asarray(after[row], np.float32), k, row)
    qpos = pulling_queries(train, row)
    parts = [before[row][None], after[row][None], train.emb[qpos].reshape(-1, before.shape[1]),
             before[nb], after[na]]
    x = np.vstack([np.asarray(p, dtype=np.float64) for p in parts])
    pca = PCA(n_components=2, random_state=0).fit(x)
    xy = pca.transform(x)
    p = len(qpos)
    return LocalView(int(row), xy[0], xy[1], qpos, xy[2:2 + p], nb, xy[2 + p:2 + p + k], na,
                     xy[2 + p + k:], float(pca.explained_variance_ratio_.sum()))
