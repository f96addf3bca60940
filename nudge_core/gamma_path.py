"""NUDGE's closed forms as exact functions of γ, for the records that training queries pull.

Notation (``../shared/nudge-method.md``): v_i unit-norm record, c_i = sum of the training queries
that judge record i relevant (its *pull*), ĉ_i = c_i/||c_i||.

* NUDGE-M: e_i(γ) = v_i + γ ĝ_i with ĝ_i = ĉ_i (0 when c_i = 0); every pulled record moves by γ.
* NUDGE-N: e_i(γ) = ĉ_i if v_i·ĉ_i >= 1 - γ/2; else v_i if c_i = 0, b_i = 0 or a_i < 0; else
  (1 - γ/2) v_i + sqrt(γ(4 - γ))/2 u_i, with a_i = v_i·c_i, b_i = sqrt(max(||c_i||² - a_i², 0)),
  u_i = (c_i - a_i v_i)/b_i. Unit norm, and ||e_i - v_i||² <= γ.

Scores of a query q against e_i(γ) are therefore combinations of q·v_i, q·ĝ_i / q·u_i, q·ĉ_i:
:meth:`GammaPath.prepare` computes those once, :meth:`GammaPath.scores` then costs one
elementwise pass per γ. That is what makes the γ search, the sensitivity sweep and the app's
γ slider cheap.

:class:`GammaBounds` states what γ a method allows (one place for NUDGE-N's γ <= 4);
:class:`GammaSpec` is how a user sets γ (auto, fixed, range, grid), parsed strictly from text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import SpecError
from .retrieval import normalize_rows

#: Most γ values a range or grid may hold (each is one validation pass).
MAX_GRID = 10000
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

@dataclass(frozen=True)
class GammaBounds:
    """The γ a method accepts and how it is chosen by default.

    ``low``/``high``: the allowed closed interval (``high`` may be inf); ``why``: the reason for
    ``high``, quoted in errors; ``default_grid``: the grid searched when the user gives none
    (None = the method finds γ exactly); ``sweep_high``: the top of the sensitivity page's
    log-spaced grid.
    """

    low: float = 0.0
    high: float = float("inf")
    why: str = ""
    default_grid: tuple[float, ...] | None = None
    sweep_high: float = 10.0

    def check(self, gamma: float, what: str = "gamma") -> float:
        """``gamma`` as a float, or ValueError naming ``what`` and the allowed range."""
        try:
            gamma = float(gamma)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a number, got {gamma!r}") from None
        if not np.isfinite(gamma) or gamma < self.low:
            raise ValueError(f"{what} must be a finite number >= {self.low:g}, got {gamma}")
        if gamma > self.high:
            raise ValueError(f"{what} must be in [{self.low:g}, {self.high:g}]{self.why}; got {gamma}")
        return gamma


#: NUDGE-M: 0 <= γ <= 1000 (every pulled record moves by exactly γ; past 1000 a moved record is
#: over a thousand times as long as the unit-norm others and wins every query it has any positive
#: score for, so larger γ says nothing more; 1e308 gave NDCG 0).
M_BOUNDS = GammaBounds(high=1000.0, why=" (a move of 1000 unit lengths already dominates every "
                       "score)", sweep_high=10.0)
#: NUDGE-N: γ bounds ||e - v||² of unit vectors, which is at most 4; the reference's grid 0 … 0.48.
N_BOUNDS = GammaBounds(high=4.0, why=" (it bounds the squared change of a unit vector, at most 4)",
                       default_grid=tuple(0.02 * i for i in range(25)), sweep_high=4.0)


def parse_number(text: str, what: str) -> float:
    """A finite decimal number, strictly: no underscores, hex, 'inf' or 'nan' (``float`` accepts
    ``"0_1"`` as 1)."""
    text = str(text).strip()
    if not _NUMBER.fullmatch(text) or not np.isfinite(float(text)):
        raise SpecError(f"{what}: expected a finite decimal number, got {text[:40]!r}")
    return float(text)


@dataclass(frozen=True)
class GammaSpec:
    """How a method's γ is set. ``mode``: "auto" (the method's own choice), "fixed" (``value``),
    "range" (``start``:``stop``:``step``, stop included when on the grid), "grid" (``values``,
    searched in the order given) or "exact" (the exact step curve of the validation objective
    over [``start``, ``stop``], default the method's whole range; :mod:`exact_path`)."""

    mode: str = "auto"
    value: float | None = None
    start: float | None = None
    stop: float | None = None
    step: float | None = None
    values: tuple[float, ...] | None = None

    @classmethod
    def parse(cls, text: str | float | None, what: str = "gamma") -> "GammaSpec":
        """From the CLI's text: ``auto``, ``G``, ``START:STOP:STEP``, ``G1,G2,...``, ``exact`` or
        ``exact:LOW:HIGH``."""
        if text is None or (isinstance(text, str) and text.strip() == "auto"):
            return cls()
        if isinstance(text, str) and text.strip().split(":")[0] == "exact":
            parts = text.strip().split(":")[1:]
            if len(parts) not in (0, 2):
                raise SpecError(f"{what}: expected exact or exact:LOW:HIGH, got {text[:40]!r}")
            low, high = (parse_number(p, what) for p in parts) if parts else (None, None)
            return cls("exact", start=low, stop=high)
        if isinstance(text, (int, float, np.floating)) and not isinstance(text, bool):
            return cls("fixed", value=parse_number(repr(float(text)), what))
        text = str(text).strip()
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise SpecError(f"{what}: expected START:STOP:STEP, got {text[:40]!r}")
            start, stop, step = (parse_number(p, what) for p in parts)
            return cls("range", start=start, stop=stop, step=step)
        if "," in text:
            return cls("grid", values=tuple(parse_number(p, what) for p in text.split(",")))
        return cls("fixed", value=parse_number(text, what))

    def __str__(self) -> str:
        if self.mode == "fixed":
            return repr(self.value)
        if self.mode == "range":
            return f"{self.start!r}:{self.stop!r}:{self.step!r}"
        if self.mode == "grid":
            return ",".join(repr(v) for v in self.values)
        if self.mode == "exact":
            return "exact" if self.start is None else f"exact:{self.start!r}:{self.stop!r}"
        return "auto"

    def grid(self) -> tuple[float, ...] | None:
        """The γ values searched (a range expanded), or None for auto / fixed."""
        if self.mode == "grid":
            return self.values
        if self.mode != "range":
            return None
        n = int(np.floor((self.stop - self.start) / self.step + 1e-9)) + 1
        return tuple(round(self.start + i * self.step, 12) for i in range(n))

    def check(self, bounds, what: str) -> None:
        """Refuse what ``bounds`` (:class:`~nudge_core.gamma_path.GammaBounds`) does not allow."""
        if self.mode not in ("auto", "fixed", "range", "grid", "exact"):
            raise SpecError(f"{what}: mode must be auto, fixed, range, grid or exact, got {self.mode!r}")
        if self.mode == "exact" and self.start is not None:
            for g in (self.start, self.stop):
                try:
                    bounds.check(g, "each γ bound")
                except ValueError as exc:
                    raise SpecError(f"{what}: {exc}") from None
            if not self.start < self.stop:
                raise SpecError(f"{what}: the bounds must be LOW:HIGH with LOW < HIGH, got {self}")
        if self.mode == "range":
            if not self.step > 0:
                raise SpecError(f"{what}: the step must be > 0, got {self.step!r}")
            if self.stop < self.start:
                raise SpecError(f"{what}: the range runs from {self.start:g} down to {self.stop:g}; "
                                "give START <= STOP")
            n = np.floor((self.stop - self.start) / self.step + 1e-9) + 1
            if n > MAX_GRID:
                raise SpecError(f"{what}: {self} gives more than {MAX_GRID} γ values; use a larger step")
            if n == 1 and self.stop > self.start:
                raise SpecError(f"{what}: the step {self.step:g} is larger than the range "
                                f"{self.start:g} … {self.stop:g}, so only γ = {self.start:g} would "
                                "be tried; use a smaller step")
        if self.mode == "grid" and not 0 < len(self.values) <= MAX_GRID:
            raise SpecError(f"{what}: give between 1 and {MAX_GRID} γ values")
        for g in ([self.value] if self.mode == "fixed" else self.grid() or ()):
            try:
                bounds.check(g, "γ")
            except ValueError as exc:
                raise SpecError(f"{what}: {exc}") from None

    def estimator_kwargs(self) -> dict:
        if self.mode == "fixed":
            return {"gamma": self.value}
        if self.mode in ("range", "grid"):
            return {"gammas": self.grid()}
        if self.mode == "exact":
            return {"exact": True, **({} if self.start is None
                                      else {"gamma_bounds": (self.start, self.stop)})}
        return {}


@dataclass
class GammaPath:
    """The γ-dependent embeddings of the *active* records (those answering a train/val query).

    unit_norm: False = NUDGE-M's path, True = NUDGE-N's; v: (m, d) float32 unit-norm originals;
    c: (m, d) float32 pulls (zero rows = never moved).
    """

    unit_norm: bool
    v: np.ndarray
    c: np.ndarray

    def __post_init__(self) -> None:
        self.bounds = N_BOUNDS if self.unit_norm else M_BOUNDS
        self.v = np.ascontiguousarray(self.v, dtype=np.float32)
        self.c = np.ascontiguousarray(self.c, dtype=np.float32)
        self.pulled = np.any(self.c != 0, axis=1)
        self.c_hat = normalize_rows(self.c)
        if self.unit_norm:
            # u is the same for c and any multiple of it; c is first scaled by a power of two near
            # its largest component (exact in floating point, so ordinary pulls give bit for bit
            # what c itself gives), so that c·c cannot overflow or underflow whatever the scale
            # of the queries (1e-30 or 1e30).
            peak = np.max(np.abs(self.c), axis=1).astype(np.float64)
            scale = np.exp2(np.round(np.log2(np.where(peak > 0, peak, 1.0))))
            c = (self.c / scale[:, None]).astype(np.float32)
            a = np.einsum("ij,ij->i", self.v, c)
            cc = np.einsum("ij,ij->i", c, c)
            b = np.sqrt(np.maximum(cc - a * a, 0)).astype(np.float32)
            safe_b = np.where(b > 0, b, 1).astype(np.float32)
            self.u = np.where((b > 0)[:, None], (c - a[:, None] * self.v) / safe_b[:, None],
                              0).astype(np.float32)
            self.cos_vc = np.einsum("ij,ij->i", self.v, self.c_hat)
            self.stuck = ~self.pulled | (b == 0) | (a < 0)

    def _cases(self, gamma: float) -> tuple[np.ndarray, np.ndarray]:
        """NUDGE-N masks: records at ĉ (case 1) and records left at v (case 2)."""
        if gamma == 0:
            none = np.zeros(len(self.v), dtype=bool)
            return none, np.ones(len(self.v), dtype=bool)
        at_c = self.pulled & (self.cos_vc >= 1 - gamma / 2)
        return at_c, ~at_c & self.stuck

    def _coefficients(self, gamma: float) -> tuple[float, float]:
        return 1 - gamma / 2, float(np.sqrt(gamma * (4 - gamma)) / 2)

    def embed(self, gamma: float) -> np.ndarray:
        """(m, d) float32 fine-tuned embeddings of the active records at ``gamma``."""
        gamma = self.bounds.check(gamma)
        if not self.unit_norm:
            e = self.c_hat * np.float32(gamma)
            e += self.v
            return e
        at_c, stay = self._cases(gamma)
        alpha, beta = self._coefficients(gamma)
        e = (np.float32(alpha) * self.v + np.float32(beta) * self.u).astype(np.float32)
        e[stay] = self.v[stay]
        e[at_c] = self.c_hat[at_c]
        return e

    def prepare(self, queries: np.ndarray, qv: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per-query dot products with the path's directions; each (n_queries, m) float32.

        ``qv``: the queries' scores against ``v`` when already known (a search that excluded the
        active records returns them), so that GEMM is not repeated.
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        out = {"qv": q @ self.v.T if qv is None else qv, "qc": q @ self.c_hat.T}
        if self.unit_norm:
            out["qu"] = q @ self.u.T
        return out

    def scores(self, prepared: dict[str, np.ndarray], gamma: float) -> np.ndarray:
        """(n_queries, m) float32 inner products q·e_i(γ) from :meth:`prepare`'s output."""
        gamma = self.bounds.check(gamma)
        if not self.unit_norm:
            return prepared["qv"] + np.float32(gamma) * prepared["qc"]
        # Per-record coefficients: (α, β, 0) moving, (1, 0, 0) left at v, (0, 0, 1) at ĉ. Products
        # with 0 and 1 are exact, so this equals selecting q·v / q·ĉ columns, without fancy indexing.
        at_c, stay = self._cases(gamma)
        alpha, beta = self._coefficients(gamma)
        a = np.where(stay, 1, np.where(at_c, 0, alpha)).astype(np.float32)
        b = np.where(stay | at_c, 0, beta).astype(np.float32)
        s = prepared["qv"] * a
        s += prepared["qu"] * b
        if at_c.any():
            s += prepared["qc"] * at_c.astype(np.float32)
        return s


def _masked_reduce(fn: np.ufunc, x: np.ndarray, mask: np.ndarray, initial: float,
                   work: np.ndarray) -> np.ndarray:
    """Row-wise ``fn.reduce`` (np.fmax/np.fmin) of ``x`` (n, m) over ``mask``; ``initial`` for rows
    with no entry; ``work``: a float64 scratch array of x's shape.

    Entries outside the mask become NaN (0/False), which fmax/fmin skip. Branch-free, unlike
    ``np.max(x, where=mask)``, which on masks as mixed as m_intervals' was 4x slower.
    """
    with np.errstate(invalid="ignore"):
        np.divide(0.0, mask, out=work)  # 0 inside the mask, NaN (0/0) outside
    work += x
    return fn.reduce(work, axis=1, initial=initial)


def m_intervals(qv: np.ndarray, qg: np.ndarray, fixed_best: np.ndarray, pair_query: np.ndarray,
                pair_answer: np.ndarray, block_elems: int = 2**22) -> tuple[np.ndarray, np.ndarray]:
    """NUDGE-M: for each validation pair (q, a), the γ interval [lo, hi) where a ranks first.

    qv, qg: (n_val, m) float32 q·v_x and q·ĝ_x over the active records; ``fixed_best``: (n_val,)
    the best score among records that never move (-inf if none); ``pair_query``/``pair_answer``:
    (n_pairs,) int, query j judges active record a relevant. With Δs_x = q·v_x - q·v_a and
    Δd_x = q·ĝ_a - q·ĝ_x, a ranks first iff Δs_x <= γ Δd_x for every x:
    lo = max(0, max_{Δd>0} Δs/Δd), hi = min_{Δd<0} Δs/Δd (inf if none); the pair is dropped if some x has Δd_x = 0 < Δs_x or hi < lo. Exact maths (no ε), float64.
    Returns (lo, hi) of the surviving pairs.
    """
    pair_q, pair_a = np.asarray(pair_query, np.int64), np.asarray(pair_answer, np.int64)
    los, his = [], []
    block_pairs = max(1, block_elems // (qv.shape[1] + 1))  # bounds the float64 temporaries
    for start in range(0, len(pair_q), block_pairs):
        jq, ja = pair_q[start:start + block_pairs], pair_a[start:start + block_pairs]
        at = np.arange(len(jq))
        ds = qv[jq].astype(np.float64)
        dd = qg[jq].astype(np.float64)
        s_a = ds[at, ja].copy()
        g_a = dd[at, ja].copy()
        ds -= s_a[:, None]                          # Δs_x
        np.subtract(g_a[:, None], dd, out=dd)       # Δd_x
        pos, neg = dd > 0, dd < 0
        blocked = (~pos & ~neg & (ds > 0)).any(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(ds, dd, out=ds)               # ratio; only read where Δd != 0
            lo = _masked_reduce(np.fmax, ds, pos, -np.inf, work=dd)
            hi = _masked_reduce(np.fmin, ds, neg, np.inf, work=dd)
            # the best record that never moves: Δs = fixed - q·v_a, Δd = q·ĝ_a
            ds_f = fixed_best[jq].astype(np.float64) - s_a
            ratio_f = ds_f / g_a
        lo = np.maximum(np.maximum(lo, np.where(g_a > 0, ratio_f, -np.inf)), 0.0)
        hi = np.minimum(hi, np.where(g_a < 0, ratio_f, np.inf))
        blocked |= (g_a == 0) & (ds_f > 0)
        keep = ~blocked & (hi >= lo)
        los.append(lo[keep])
        his.append(hi[keep])
    if not los:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(los), np.concatenate(his)


def sweep(lo: np.ndarray, hi: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Sweep interval end-points in increasing order: +1 at each lo, -1 at each hi.

    Returns (γ*, breakpoints, counts): counts[i] = number of intervals containing breakpoints[i]
    (intervals are [lo, hi)); γ* = the smallest breakpoint reaching the highest count, 0 when no
    interval survives. Breakpoints are finite and start at 0.
    """
    values = np.concatenate([lo, hi])
    signs = np.concatenate([np.ones(len(lo)), -np.ones(len(hi))])
    finite = np.isfinite(values)
    values, signs = values[finite], signs[finite]
    uniq, inverse = np.unique(values, return_inverse=True)
    counts = np.cumsum(np.bincount(inverse, weights=signs, minlength=len(uniq))).astype(np.int64)
    if len(uniq) == 0 or uniq[0] > 0:
        uniq = np.concatenate([[0.0], uniq])
        counts = np.concatenate([[0], counts])
    best = int(np.argmax(counts))
    gamma = float(uniq[best]) if counts[best] > 0 else 0.0
    return gamma, uniq, counts


class GammaScorer:
    """Exact top-k of a query set against the fine-tuned index at any γ, without refitting.

    Built from a fitted path: ``fixed_scores``/``fixed_rows`` (n_queries, K) are each query's best
    records among those that never move; the active records are rescored per γ. Exact for k <= K.
    """

    def __init__(self, path: GammaPath, active_rows: np.ndarray, queries: np.ndarray,
                 fixed_scores: np.ndarray, fixed_rows: np.ndarray) -> None:
        self.path = path
        self.active_rows = active_rows
        self.prepared = path.prepare(queries)
        self.fixed_scores = fixed_scores
        self.fixed_rows = fixed_rows

    def topk(self, gamma: float, k: int) -> np.ndarray:
        """(n_queries, k) record rows ranked by q·e(γ), best first."""
        from .retrieval import merge_topk

        if k > self.fixed_rows.shape[1]:
            raise ValueError(f"k={k} exceeds the {self.fixed_rows.shape[1]} fixed candidates kept")
        return merge_topk(self.path.scores(self.prepared, gamma), self.active_rows,
                          self.fixed_scores, self.fixed_rows, k)
