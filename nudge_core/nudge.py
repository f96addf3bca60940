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
from .estimator import FineTuner, unit_records
from .gamma_path import M_BOUNDS, N_BOUNDS, GammaBounds, GammaPath, GammaScorer, m_intervals, sweep
from .index import ExactIndex, Index
from .exact_path import StepCurve, exact_curve, parse_objective
from .metrics import objective_values
from .retrieval import merge_topk, row_norms


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


def prepare_active(index: Index, train: QuerySet, val: QuerySet, k_fixed: int) -> ActiveSet:
    """Active set of a fit; ``index`` holds the (n, d) unit-norm corpus."""
    train_query, train_rows = train.pairs()
    val_query, val_rows = val.pairs()
    rows = np.unique(np.concatenate([train_rows, val_rows]))
    c = pulls(train.emb, train_query, np.searchsorted(rows, train_rows), len(rows))
    fixed_scores, fixed_rows, qv = index.search(val.emb, k_fixed, exclude=rows, excluded_scores=True)
    return ActiveSet(rows, index.take(rows), c, fixed_scores, fixed_rows, qv,
                     val_query, np.searchsorted(rows, val_rows))


CHOOSE_RULES = ("smallest", "plateau-middle")


class _NudgeBase(FineTuner):
    """NUDGE-M and NUDGE-N: γ fixed, searched on ``gammas``, or chosen on validation.

    Shared parameters: ``gamma`` (fixed γ), ``gammas`` (a grid), ``val_k``, ``objective``
    ("hit@1", "recall@K", "ndcg@K", "mrr@K"; None = the method's own), ``exact`` (search the
    exact step curve of the objective, :mod:`exact_path`; None = the method's default),
    ``gamma_bounds`` ((low, high) the exact search allows; None = the method's whole range) and
    ``choose`` ("smallest": the paper's smallest γ reaching the best value; "plateau-middle": the
    middle of the widest best plateau).
    """

    unit_norm = False
    bounds: GammaBounds = M_BOUNDS
    exact_by_default = True

    def __init__(self, gamma: float | None = None,
                 gammas: tuple[float, ...] | np.ndarray | None = None, val_k: int = 1,
                 objective: str | None = None, exact: bool | None = None,
                 gamma_bounds: tuple[float, float] | None = None, choose: str = "smallest") -> None:
        self.gamma = gamma
        self.gammas = gammas
        self.val_k = val_k
        self.objective = objective
        self.exact = exact
        self.gamma_bounds = gamma_bounds
        self.choose = choose

    def _objective(self) -> str:
        return self.objective or "hit@1"

    def _exact(self) -> bool:
        return self.exact_by_default if self.exact is None else bool(self.exact)

    def _interval(self) -> tuple[float, float]:
        if self.gamma_bounds is None:
            return self.bounds.low, self.bounds.high
        return tuple(float(g) for g in self.gamma_bounds)

    def _exact_curve(self, val: QuerySet, interval: tuple[float, float] | None = None) -> StepCurve:
        """The exact step curve of the objective over ``interval`` (default: the allowed one)."""
        act = self.active_
        return exact_curve(self.path_, val, act.fixed_scores, act.val_query, act.val_local,
                           self._objective(), interval or self._interval())

    def _use_curve(self, curve: StepCurve, gamma: float | None) -> float:
        """Record an exact curve and return the γ it chooses (or ``gamma`` when fixed)."""
        self.curve_ = curve
        self.curve_gammas_, self.curve_objective_ = curve.breaks, curve.after
        gamma = curve.choose(self.choose) if gamma is None else gamma
        self.objective_ = curve.value(gamma)
        return gamma

    def _check_params(self) -> None:
        if not isinstance(self.val_k, (int, np.integer)) or isinstance(self.val_k, bool) \
                or self.val_k < 1:
            raise ValueError(f"val_k must be an integer >= 1, got {self.val_k!r}")
        family_k = parse_objective(self._objective())
        if self.choose not in CHOOSE_RULES:
            raise ValueError(f"choose must be one of {CHOOSE_RULES}, got {self.choose!r}")
        if self.gamma_bounds is not None:
            lo, hi = (self.bounds.check(g, "gamma_bounds") for g in self.gamma_bounds)
            if not lo < hi:
                raise ValueError(f"gamma_bounds must be (low, high) with low < high, got "
                                 f"{tuple(self.gamma_bounds)}")
        if self.choose != "smallest" and not self._exact():
            raise ValueError("choose='plateau-middle' needs the exact search (exact=True)")
        self._k = family_k[1]
        if self.gamma is not None:
            self.bounds.check(self.gamma, "gamma")
        if self.gammas is not None:
            if len(self.gammas) == 0:
                raise ValueError("gammas is empty; give at least one γ to evaluate")
            for g in self.gammas:
                self.bounds.check(g, "every γ in gammas")
        if self.gammas is not None and (self.exact or self.gamma_bounds is not None):
            raise ValueError("give either gammas (a grid) or an exact search (exact, gamma_bounds)")

    def _start(self, records: np.ndarray, train: QuerySet, val: QuerySet, k_fixed: int,
               normalized: np.ndarray | None) -> None:
        if records.ndim != 2:
            raise DataError(f"records must be a 2-D (n, d) matrix, got shape {records.shape}", "records")
        _check_queries(train, val, records.shape[1])
        k_fixed = min(int(k_fixed), records.shape[0])  # more would only add -1 padding
        self._t0 = time.perf_counter()
        if normalized is None and hasattr(records, "unit_view"):  # sharded: normalised as read
            normalized = records.unit_view()
        # the moved rows are written into this copy (an out-of-core view copies only its overlay)
        unit = unit_records(records) if normalized is None else normalized.copy()
        self.index_ = ExactIndex(unit)
        self.active_ = prepare_active(self.index_, train, val, k_fixed)
        self.path_ = GammaPath(self.unit_norm, self.active_.v, self.active_.c)

    def _finish(self, gamma: float) -> None:
        act = self.active_
        act.qv = None
        self.gamma_ = float(gamma)
        e = self.path_.embed(self.gamma_)
        shift = row_norms(e - act.v)
        moved = shift > 0
        self.index_.replace(act.rows[moved], e[moved])
        self.moved_ = act.rows[moved]
        self.shift_ = shift[moved].astype(np.float32)
        self.fit_seconds_ = time.perf_counter() - self._t0

    @property
    def embeddings_(self) -> np.ndarray:
        """(n, d) float32 fine-tuned records (what :attr:`index_` searches)."""
        return self.index_.vectors

    def scorer(self, queries: np.ndarray, k: int = 40) -> GammaScorer:
        """A :class:`GammaScorer` re-ranking ``queries`` (n, d) at any γ (top ``k`` at most)."""
        act = self.active_
        fixed_scores, fixed_rows = self.index_.search(queries, k, exclude=act.rows)
        return GammaScorer(self.path_, act.rows, queries, fixed_scores, fixed_rows)

    @property
    def gamma_curve_(self) -> np.ndarray:
        """(n_points, 2) float64: [γ, validation objective] at every γ evaluated."""
        return np.column_stack([self.curve_gammas_, self.curve_objective_])

    def describe(self) -> dict:
        exact = getattr(self, "curve_", None)
        return {"gamma_curve": [[float(g), float(o)] for g, o in self.gamma_curve_],
                **({"gamma_curve_points": exact.point.tolist(), "gamma_bounds": [exact.lo, exact.hi]}
                   if exact is not None else {}),
                "objective": self._objective(), "search": "exact" if exact is not None else "grid",
                "choose": self.choose,
                "validation_objective": float(self.objective_),
                "moved_records": int(len(self.moved_)),
                "mean_shift": float(self.shift_.mean()) if len(self.shift_) else 0.0}


class NudgeM(_NudgeBase):
    """NUDGE-M: every pulled record moves by exactly γ toward its pull; inner-product retrieval.

    Parameters (see :class:`_NudgeBase`): by default γ is chosen exactly over [0, 1000] by
    validation hit@1 (the share of validation queries whose top-1 record is relevant), with the
    interval sweep of the reference; another ``objective``, ``gamma_bounds`` or
    ``choose="plateau-middle"`` use the exact step curve of :mod:`exact_path`; ``gammas``
    restricts the choice to a grid (the first best value in the order given). ``val_k`` must be
    1 (use ``objective`` for another cut-off).

    Fitted attributes: ``gamma_``, ``objective_`` (the objective at ``gamma_``),
    ``curve_gammas_``/``curve_objective_`` (the step function at every breakpoint; ``curve_``
    the full :class:`~nudge_core.exact_path.StepCurve` when the exact curve was used),
    ``index_`` / ``embeddings_`` (n, d) float32 not unit norm, ``moved_`` (record rows),
    ``shift_`` (their ||e - v||, all = γ), ``fit_seconds_``.
    """

    unit_norm = False
    bounds = M_BOUNDS
    exact_by_default = True

    def _check_params(self) -> None:
        super()._check_params()
        if self.val_k != 1:
            raise ValueError(f"val_k must be 1 for NUDGE-M (give objective='recall@K' etc. for "
                             f"another cut-off), got {self.val_k!r}")
        if self.exact is False and self.gammas is None and self.gamma is None:
            raise ValueError("NUDGE-M has no default grid: give gammas, or leave exact on")

    def fit(self, records: np.ndarray, train: QuerySet, val: QuerySet, *,
            normalized: np.ndarray | None = None) -> "NudgeM":
        """records: (n, d) float32 (any norm; may be memory-mapped); ``normalized``: their
        unit-norm copy when the caller has one (read only). Returns self."""
        self._check_params()
        self._start(records, train, val, self._k, normalized)
        fixed = None if self.gamma is None else float(self.gamma)
        interval_sweep = (self._objective() == "hit@1" and self.choose == "smallest"
                          and self.gamma_bounds is None)
        if not interval_sweep:
            grid = None if self.gammas is None else [float(g) for g in self.gammas]
            curve = self._exact_curve(val, (min(grid), max(grid)) if grid else None)
            if grid is not None and fixed is None:
                values = np.round([curve.value(g) for g in grid], 12)
                fixed = grid[int(np.argmax(values))]
            self._finish(self._use_curve(curve, fixed))
            return self
        act = self.active_
        prep = self.path_.prepare(val.emb, qv=act.qv)
        lo, hi = m_intervals(prep["qv"], prep["qc"], act.fixed_scores[:, 0], act.val_query,
                             act.val_local)
        best, breaks, counts = sweep(lo[lo <= self.bounds.high], hi[lo <= self.bounds.high])
        inside = breaks <= self.bounds.high  # the curve and the search stay within the bounds
        self.curve_gammas_, self.curve_objective_ = breaks[inside], counts[inside] / len(val)

        def objective(g: float) -> float:
            return float(self.curve_objective_[np.searchsorted(self.curve_gammas_, g,
                                                               side="right") - 1])
        if fixed is not None:
            gamma = fixed
        elif self.gammas is not None:
            grid = [float(g) for g in self.gammas]
            gamma = grid[int(np.argmax(np.round([objective(g) for g in grid], 12)))]
        else:
            gamma = best
        self.objective_ = objective(gamma)
        self._finish(gamma)
        return self


class NudgeN(_NudgeBase):
    """NUDGE-N: maximise c·e on the unit sphere with ||e - v||² <= γ; cosine retrieval.

    Parameters (see :class:`_NudgeBase`): by default γ is searched on ``gammas`` (default the
    reference's 0, 0.02, ..., 0.48; ties go to the first best in the order given) by validation
    recall@``val_k`` (denominator min(|R|, val_k)); ``exact=True`` finds the exact step curve of
    the ``objective`` over ``gamma_bounds`` (default [0, 4]) instead.

    Fitted attributes as :class:`NudgeM`; ``shift_`` holds each moved record's ||e - v||
    (<= sqrt(γ)); ``embeddings_`` are unit norm.
    """

    unit_norm = True
    bounds = N_BOUNDS
    exact_by_default = False

    def _objective(self) -> str:
        return self.objective or f"recall@{self.val_k}"

    def fit(self, records: np.ndarray, train: QuerySet, val: QuerySet, *,
            normalized: np.ndarray | None = None) -> "NudgeN":
        """records: (n, d) float32 (any norm; may be memory-mapped); ``normalized``: their
        unit-norm copy when the caller has one (read only). Returns self."""
        self._check_params()
        self._start(records, train, val, self._k, normalized)
        if self._exact() and self.gammas is None:
            fixed = None if self.gamma is None else float(self.gamma)
            self._finish(self._use_curve(self._exact_curve(val), fixed))
            return self
        k = min(self._k, records.shape[0])  # any k >= n ranks the same
        family = parse_objective(self._objective())[0]
        if self.gamma is not None:  # fixed: the curve still shows the default grid around it
            grid = sorted({float(g) for g in self.bounds.default_grid} | {float(self.gamma)})
        else:
            grid = [float(g) for g in (self.bounds.default_grid if self.gammas is None
                                       else self.gammas)]
        act = self.active_
        prep = self.path_.prepare(val.emb, qv=act.qv)
        objectives = []
        for g in grid:
            top = merge_topk(self.path_.scores(prep, g), act.rows, act.fixed_scores, act.fixed_rows, k)
            objectives.append(float(objective_values(top, val.relevance, family, k).mean()))
        best = (grid.index(float(self.gamma)) if self.gamma is not None else  # fixed: kept
                int(np.argmax(np.round(np.array(objectives), 12))))  # first max = smallest γ in order
        self.curve_gammas_ = np.array(grid, dtype=np.float64)
        self.curve_objective_ = np.array(objectives)
        self.objective_ = objectives[best]
        self._finish(grid[best])
        return self
