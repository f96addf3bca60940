"""NUDGE-M and NUDGE-N: fine-tune record embeddings in closed form, γ chosen on validation queries.

Estimators in the scikit-learn style: ``__init__`` stores settings, :meth:`fit` computes, fitted
state ends in ``_``. Both agree with the authors' ``nudge-ft`` 0.1.2 on the same inputs (γ to
~1e-6, embeddings to ~1e-5) except for the deliberate differences listed in
``../shared/nudge-method.md`` (b clamped at 0, exact ε-free interval maths, validation queries
without a relevant record refused).

Scaling: only *active* records (relevant to some train or validation query) can change rank
relative to each other as γ varies; every other record keeps its original embedding, so its
scores are computed once per validation query (one blocked exact search keeping the best
``val_k``). The γ search then touches only the active records. Peak memory is the input plus one
float32 copy of the corpus (the output) plus O(n_val x n_active).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .data import QuerySet
from .errors import DataError
from .gamma_path import GammaPath, GammaScorer, check_gamma, m_intervals, sweep
from .metrics import recall_at_k
from .retrieval import merge_topk, normalize_rows, row_norms, search

#: The reference's NUDGE-N grid: 0, 0.02, ..., 0.48.
DEFAULT_N_GRID = tuple(0.02 * i for i in range(25))


@dataclass
class ActiveSet:
    """Active records, their unit-norm originals and pulls, and the fixed records' best scores.

    rows: (m,) int64 record rows, sorted; v: (m, d) float32 unit norm; c: (m, d) float32 pulls;
    fixed_scores/fixed_rows: (n_val, k) best scores among the other records for each val query;
    qv: (n_val, m) float32 validation queries' scores against ``v`` (None once the fit has chosen
    γ: only the γ search reads it, and it can be large); val_query/val_local: (n_pairs,)
    int64, every (validation query, relevant record) pair as query position and index into ``rows``.
    """

    rows: np.ndarray
    v: np.ndarray
    c: np.ndarray
    fixed_scores: np.ndarray
    fixed_rows: np.ndarray
    qv: np.ndarray | None
    val_query: np.ndarray
    val_local: np.ndarray


def _check_queries(train: QuerySet, val: QuerySet, dim: int) -> None:
    for name, qs in (("training", train), ("validation", val)):
        if len(qs) == 0:
            raise DataError(f"the {name} split is empty; NUDGE needs {name} queries", name)
        if qs.emb.shape[1] != dim:
            raise DataError(f"{name} queries have dimension {qs.emb.shape[1]}, records {dim}", name)
        empty = [j for j, n in enumerate(map(len, qs.answers)) if n == 0]
        if empty:
            raise DataError(f"{name} query {qs.ids[empty[0]]!r} has no relevant record; every "
                            f"{name} query needs at least one", name)


def pulls(queries: np.ndarray, pair_query: np.ndarray, pair_record: np.ndarray,
          n_records: int) -> np.ndarray:
    """(n_records, d) float32: c_i = sum of the queries (rows of ``queries`` (n_q, d)) paired with
    record i; ``pair_query``/``pair_record``: (n_pairs,) int the pairs (a sparse product)."""
    incidence = sp.csr_matrix((np.ones(len(pair_query), np.float32), (pair_record, pair_query)),
                              shape=(n_records, len(queries)))
    return np.asarray(incidence @ np.asarray(queries, np.float32), dtype=np.float32)


def prepare_active(normalized: np.ndarray, train: QuerySet, val: QuerySet, k_fixed: int) -> ActiveSet:
    """Active set of a fit; ``normalized`` is the (n, d) unit-norm corpus."""
    train_query, train_rows = train.pairs()
    val_query, val_rows = val.pairs()
    rows = np.unique(np.concatenate([train_rows, val_rows]))
    c = pulls(train.emb, train_query, np.searchsorted(rows, train_rows), len(rows))
    fixed_scores, fixed_rows, qv = search(val.emb, normalized, k_fixed, exclude=rows,
                                          excluded_scores=True)
    return ActiveSet(rows, np.asarray(normalized[rows]), c, fixed_scores, fixed_rows, qv,
                     val_query, np.searchsorted(rows, val_rows))


class RecallAtK:
    """Per-query recall@k (:func:`metrics.recall_at_k`) for many rankings of the same queries.

    ``pair_query``/``pair_row``: (n_pairs,) int, query j judges row r relevant (repeats count
    once); rows are in [0, n_rows). The pairs are encoded once as sorted integers, so each call
    finds the relevant ranks with one vectorised ``searchsorted`` (``metrics.gains_of`` would loop
    over queries in Python for every γ).
    """

    def __init__(self, pair_query: np.ndarray, pair_row: np.ndarray, n_queries: int, n_rows: int,
                 k: int) -> None:
        self.k = k
        self.n_rows = n_rows + 1  # code space includes row -1 (shifted to 0)
        self.codes = np.unique(np.asarray(pair_query, np.int64) * self.n_rows
                               + np.asarray(pair_row, np.int64) + 1)
        self.n_relevant = np.bincount(self.codes // self.n_rows, minlength=n_queries)

    def __call__(self, top_rows: np.ndarray) -> np.ndarray:
        """top_rows: (n_queries, >= k) rows ranked best first (-1 = nothing). Returns (n,) float64."""
        top = np.asarray(top_rows[:, :self.k], dtype=np.int64)
        codes = np.arange(top.shape[0], dtype=np.int64)[:, None] * self.n_rows + top + 1
        pos = np.minimum(np.searchsorted(self.codes, codes), max(len(self.codes) - 1, 0))
        relevant = self.codes[pos] == codes if len(self.codes) else np.zeros(top.shape, bool)
        return recall_at_k(relevant, self.n_relevant, self.k)


class _NudgeBase:
    method = ""
    metric = ""

    def _start(self, records: np.ndarray, train: QuerySet, val: QuerySet, k_fixed: int):
        if records.ndim != 2:
            raise DataError(f"records must be a 2-D (n, d) matrix, got shape {records.shape}", "records")
        _check_queries(train, val, records.shape[1])
        self._t0 = time.perf_counter()
        self.embeddings_ = normalize_rows(records)
        self.active_ = prepare_active(self.embeddings_, train, val, k_fixed)
        self.path_ = GammaPath(self.method, self.active_.v, self.active_.c)

    def _finish(self, gamma: float) -> None:
        act = self.active_
        act.qv = None
        self.gamma_ = float(gamma)
        e = self.path_.embed(self.gamma_)
        shift = row_norms(e - act.v)
        moved = shift > 0
        self.embeddings_[act.rows[moved]] = e[moved]
        self.moved_ = act.rows[moved]
        self.shift_ = shift[moved].astype(np.float32)
        self.fit_seconds_ = time.perf_counter() - self._t0

    def scorer(self, queries: np.ndarray, k: int = 40) -> GammaScorer:
        """A :class:`GammaScorer` re-ranking ``queries`` (n, d) at any γ (top ``k`` at most)."""
        act = self.active_
        fixed_scores, fixed_rows = search(queries, self.embeddings_, k, exclude=act.rows)
        return GammaScorer(self.path_, act.rows, queries, fixed_scores, fixed_rows)

    @property
    def gamma_curve_(self) -> np.ndarray:
        """(n_points, 2) float64: [γ, validation objective] at every γ evaluated."""
        return np.column_stack([self.curve_gammas_, self.curve_objective_])


class NudgeM(_NudgeBase):
    """NUDGE-M: every pulled record moves by exactly γ toward its pull; inner-product retrieval.

    Parameters
    ----------
    gamma: fixed γ >= 0, or None to choose it exactly on validation queries (interval sweep;
        objective = share of validation queries whose top-1 is relevant).

    Fitted attributes: ``gamma_``, ``objective_`` (validation top-1 accuracy at ``gamma_``),
    ``curve_gammas_``/``curve_objective_`` (the step function at every sweep breakpoint),
    ``embeddings_`` (n, d) float32 not unit norm, ``moved_`` (record rows), ``shift_`` (their
    ||e - v||, all = γ), ``fit_seconds_``.
    """

    method = "nudge-m"
    metric = "ip"

    def __init__(self, gamma: float | None = None) -> None:
        self.gamma = gamma

    def fit(self, records: np.ndarray, train: QuerySet, val: QuerySet) -> "NudgeM":
        """records: (n, d) float32 (any norm; may be memory-mapped). Returns self."""
        if self.gamma is not None:
            check_gamma(self.method, self.gamma)
        self._start(records, train, val, k_fixed=1)
        act = self.active_
        prep = self.path_.prepare(val.emb, qv=act.qv)
        lo, hi = m_intervals(prep["qv"], prep["qc"], act.fixed_scores[:, 0], act.val_query,
                             act.val_local)
        best, self.curve_gammas_, counts = sweep(lo, hi)
        self.curve_objective_ = counts / len(val)
        gamma = best if self.gamma is None else float(self.gamma)
        self.objective_ = float(self.curve_objective_[np.searchsorted(self.curve_gammas_, gamma,
                                                                      side="right") - 1])
        self._finish(gamma)
        return self


class NudgeN(_NudgeBase):
    """NUDGE-N: maximise c·e on the unit sphere with ||e - v||² <= γ; cosine retrieval.

    Parameters
    ----------
    gamma: fixed γ in [0, 4], or None to search ``gammas``.
    gammas: the grid searched (default the reference's 0, 0.02, ..., 0.48); ties go to the
        smallest γ, evaluated in the order given.
    val_k: the validation objective is mean recall@val_k, denominator min(|R|, val_k).

    Fitted attributes as :class:`NudgeM`; ``shift_`` holds each moved record's ||e - v||
    (<= sqrt(γ)); ``embeddings_`` are unit norm.
    """

    method = "nudge-n"
    metric = "cos"

    def __init__(self, gamma: float | None = None, gammas: tuple[float, ...] | np.ndarray | None = None,
                 val_k: int = 1) -> None:
        self.gamma = gamma
        self.gammas = gammas
        self.val_k = val_k

    def _grid(self) -> list[float]:
        if self.gamma is not None:
            return [check_gamma(self.method, self.gamma)]
        grid = DEFAULT_N_GRID if self.gammas is None else self.gammas
        grid = [check_gamma(self.method, g) for g in grid]
        if not grid:
            raise ValueError("gammas is empty; give at least one γ to evaluate")
        return grid

    def fit(self, records: np.ndarray, train: QuerySet, val: QuerySet) -> "NudgeN":
        """records: (n, d) float32 (any norm; may be memory-mapped). Returns self."""
        if not isinstance(self.val_k, (int, np.integer)) or self.val_k < 1:
            raise ValueError(f"val_k must be an integer >= 1, got {self.val_k!r}")
        grid = self._grid()
        self._start(records, train, val, k_fixed=int(self.val_k))
        act = self.active_
        prep = self.path_.prepare(val.emb, qv=act.qv)
        recall = RecallAtK(act.val_query, act.val_local, len(val), len(act.rows), int(self.val_k))
        active_cols = np.arange(len(act.rows))
        fixed_cols = np.full(act.fixed_rows.shape, -1)
        objectives = []
        for g in grid:
            top = merge_topk(self.path_.scores(prep, g), active_cols, act.fixed_scores, fixed_cols,
                             int(self.val_k))
            objectives.append(float(recall(top).mean()))
        objectives_arr = np.round(np.array(objectives), 12)
        best = int(np.argmax(objectives_arr))  # first maximum = smallest γ in grid order
        self.curve_gammas_ = np.array(grid, dtype=np.float64)
        self.curve_objective_ = np.array(objectives)
        self.objective_ = objectives[best]
        self._finish(grid[best])
        return self
