"""Exact γ paths: a rank-based validation objective as an exact step function of γ.

Every score NUDGE changes is a known function of one parameter t (``../shared/nudge-method.md``,
"Exact γ paths"): NUDGE-M, t = γ, s_x(t) = q·v_x + t q·ĝ_x (linear); NUDGE-N, t = θ with
γ = 2(1 - cos θ), s_x(θ) = (q·v_x) cos θ + (q·u_x) sin θ before φ_x = arccos(v_x·ĉ_x) and q·ĉ_x
from φ_x on (records whose pull points away from them jump from q·v_x to q·ĉ_x at φ_x; records
no training query pulls, and the never-moved records behind each query's best fixed scores, are
constant). For every validation (query, relevant record a) pair, the rank of a,
1 + #{x != a : s_x > s_a} (ties in a's favour), changes only where some competitor's score
crosses s_a or jumps; between consecutive events every rank, hence hit@1, recall@k, NDCG@k and
MRR@k, is constant. :func:`exact_curve` finds those events in closed form and sweeps them.

Cost: a competitor enters a pair's event search only where its score range over the allowed
interval overlaps the relevant record's range (ranges bounded exactly: end points and the
sinusoid's extremes); the rest count as always above or never above. Per pair block the work is
O(pairs x candidates x 8) in float64, blocks bounded by ``block_elems``; the inner products
(n_val x n_active x d) are recomputed once in float64; scores within :data:`TIE` tie.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

#: Score differences within this fraction of a query's largest score count as ties (a's favour):
#: a few float32 rounding steps, since the never-moved records' scores come from the float32
#: search, so an exact duplicate of a record must tie with it rather than win by rounding.
TIE = 4e-7
_OBJECTIVE = re.compile(r"(hit)@1|(recall|ndcg|mrr)@([1-9][0-9]{0,3})")


def parse_objective(name: str) -> tuple[str, int]:
    """``"hit@1"``, ``"recall@k"``, ``"ndcg@k"`` or ``"mrr@k"`` as (family, k); ValueError else."""
    m = _OBJECTIVE.fullmatch(str(name).strip())
    if not m:
        raise ValueError(f"objective must be hit@1, recall@K, ndcg@K or mrr@K (K in 1..9999), "
                         f"got {str(name)[:40]!r}")
    return ("hit", 1) if m.group(1) else (m.group(2), int(m.group(3)))


def objective_of_ranks(ranks: np.ndarray, grades: np.ndarray, objective: tuple[str, int]) -> np.ndarray:
    """One query's objective for rows of ranks. ranks: (T, |R|) int, the rank of each relevant
    record at T positions; grades: (|R|,) their grades. Returns (T,) float64."""
    family, k = objective
    inside = ranks <= k
    if family == "hit":
        return (ranks == 1).any(axis=1).astype(np.float64)
    if family == "recall":
        return inside.sum(axis=1) / min(ranks.shape[1], k)
    if family == "mrr":
        best = ranks.min(axis=1)
        return np.where(best <= k, 1.0 / best, 0.0)
    ideal = np.sort(grades)[::-1][:k] / np.log2(np.arange(2, min(k, len(grades)) + 2))
    dcg = np.where(inside, grades / np.log2(ranks + 1.0), 0.0).sum(axis=1)
    return dcg / ideal.sum() if ideal.sum() > 0 else np.zeros(len(ranks))


@dataclass
class StepCurve:
    """An exact step function of γ over [lo, hi]: ``point[i]`` at ``breaks[i]`` and ``after[i]``
    on (breaks[i], breaks[i+1]) (the last interval ends at ``hi``). ``breaks[0] == lo``."""

    objective: str
    lo: float
    hi: float
    breaks: np.ndarray
    point: np.ndarray
    after: np.ndarray

    def value(self, gamma: float) -> float:
        """The objective at ``gamma`` (the point value at a break, else its interval's)."""
        i = int(np.searchsorted(self.breaks, gamma, side="right")) - 1
        if i < 0 or gamma > self.hi:
            raise ValueError(f"γ = {gamma} is outside the curve's [{self.lo}, {self.hi}]")
        return float(self.point[i] if gamma == self.breaks[i] else self.after[i])

    @property
    def best(self) -> float:
        return float(max(self.point.max(), self.after.max()))

    def smallest_best(self) -> float:
        """The paper's rule: the smallest γ reaching the best value (a point: ties count as
        success, so a point's value is at least its neighbours')."""
        return float(self.breaks[int(np.argmax(np.round(self.point, 12) >= round(self.best, 12)))])

    def plateau_middle(self) -> float:
        """The middle of the widest run of intervals at the best interval value (a γ whose
        neighbourhood keeps the value, unlike a plateau's edge, which is a tie)."""
        ends = np.append(self.breaks[1:], self.hi)
        good = np.round(self.after, 12) == round(float(self.after.max()), 12)
        best_w, best_mid, start = -1.0, float(self.breaks[0]), None
        for i, ok in enumerate(np.append(good, False)):
            if ok and start is None:
                start = i
            elif not ok and start is not None:
                width = ends[i - 1] - self.breaks[start]
                if width > best_w:
                    best_w, best_mid = width, float((self.breaks[start] + ends[i - 1]) / 2)
                start = None
        return best_mid

    def choose(self, rule: str) -> float:
        if rule == "smallest":
            return self.smallest_best()
        if rule == "plateau-middle":
            return self.plateau_middle()
        raise ValueError(f"choose must be 'smallest' or 'plateau-middle', got {rule!r}")

    def to_json(self) -> dict:
        return {"objective": self.objective, "bounds": [self.lo, self.hi],
                "breaks": self.breaks.tolist(), "point": self.point.tolist(),
                "after": self.after.tolist()}


class _Scores:
    """Every record's score for every validation query as a piecewise function of t.

    N (``unit_norm``): phase 1 (t < phi) is a cos t + b sin t + c, phase 2 (t >= phi) is the
    constant c2; M: phase 1 only, c + g t. Arrays are (n_val, m + K): the m active records, then
    the K best fixed scores per query (constants)."""

    def __init__(self, path, queries: np.ndarray, fixed: np.ndarray) -> None:
        q = np.asarray(queries, np.float64)
        n, k = q.shape[0], fixed.shape[1]
        const = np.where(np.isfinite(fixed), fixed, -np.inf).astype(np.float64)
        v = np.asarray(path.v, np.float64)
        qv, qc = q @ v.T, q @ np.asarray(path.c_hat, np.float64).T
        self.unit_norm = path.unit_norm
        zeros = np.zeros((n, k))
        if not path.unit_norm:
            self.c = np.hstack([qv, const])
            self.g = np.hstack([np.where(path.pulled, qc, 0.0), zeros])
            return
        moving = path.pulled & ~path.stuck
        jumping = path.pulled & path.stuck  # pull away from v (a < 0) or along it (b = 0)
        qu = q @ np.asarray(path.u, np.float64).T
        self.a = np.hstack([np.where(moving, qv, 0.0), zeros])
        self.b = np.hstack([np.where(moving, qu, 0.0), zeros])
        self.c = np.hstack([np.where(moving, 0.0, qv), const])
        self.c2 = np.hstack([np.where(jumping | moving, qc, qv), const])
        phi = np.where(jumping | moving, np.arccos(np.clip(path.cos_vc.astype(np.float64), -1, 1)),
                       np.inf)
        self.phi = np.concatenate([phi, np.full(k, np.inf)])

    def at(self, j: np.ndarray, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Scores of records ``x`` for queries ``j`` at ``t`` (phase 2 from t >= phi on)."""
        if not self.unit_norm:
            return self.c[j, x] + self.g[j, x] * t
        first = self.a[j, x] * np.cos(t) + self.b[j, x] * np.sin(t) + self.c[j, x]
        return np.where(t >= self.phi[x], self.c2[j, x], first)

    def ranges(self, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        """(n_val, m + K) lowest and highest score of each record over [lo, hi]."""
        if not self.unit_norm:
            ends = (self.c + self.g * lo, self.c + self.g * hi)
            return np.minimum(*ends), np.maximum(*ends)
        n = self.c.shape[0]
        low, high = np.full(self.c.shape, np.inf), np.full(self.c.shape, -np.inf)
        stop = np.minimum(self.phi, hi)[None, :].repeat(n, 0)
        first = lo < stop  # phase 1 is visited on [lo, stop)
        peak = np.arctan2(self.b, self.a)
        points = [np.full(self.c.shape, lo), stop]
        for shift in (0.0, np.pi, -np.pi, 2 * np.pi):
            t = peak + shift
            points.append(np.where((t > lo) & (t < stop), t, lo))
        for t in points:
            s = np.where(first, self.a * np.cos(t) + self.b * np.sin(t) + self.c, np.nan)
            low, high = np.fmin(low, s), np.fmax(high, s)
        second = (self.phi <= hi)[None, :]
        low = np.where(second, np.fmin(low, self.c2), low)
        high = np.where(second, np.fmax(high, self.c2), high)
        return low, high


def _candidates(sc: _Scores, j: np.ndarray, a: np.ndarray, x: np.ndarray, lo: float,
                hi: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, 8) candidate event positions in (lo, hi) for the combos (query j, relevant a,
    competitor x), NaN where none, and (n, 8) bool: True for phase boundaries (jumps), False for
    crossings."""
    n = len(j)
    if not sc.unit_norm:
        dg = sc.g[j, x] - sc.g[j, a]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (sc.c[j, a] - sc.c[j, x]) / dg
        t = np.where((dg != 0) & (t > lo) & (t < hi), t, np.nan)
        return t[:, None], np.zeros((n, 1), bool)
    pa, px = sc.phi[a], sc.phi[x]
    edges = np.stack([np.full(n, lo), np.minimum(pa, px), np.maximum(pa, px), np.full(n, hi)], 1)
    edges = np.clip(edges, lo, hi)
    out = [np.where((pa > lo) & (pa < hi), pa, np.nan), np.where((px > lo) & (px < hi), px, np.nan)]
    for piece in range(3):
        start, end = edges[:, piece], edges[:, piece + 1]
        late_a, late_x = start >= pa, start >= px
        da = np.where(late_x, 0.0, sc.a[j, x]) - np.where(late_a, 0.0, sc.a[j, a])
        db = np.where(late_x, 0.0, sc.b[j, x]) - np.where(late_a, 0.0, sc.b[j, a])
        dc = np.where(late_x, sc.c2[j, x], sc.c[j, x]) - np.where(late_a, sc.c2[j, a], sc.c[j, a])
        r = np.hypot(da, db)
        with np.errstate(divide="ignore", invalid="ignore"):
            half = np.arccos(np.clip(-dc / r, -1, 1))
        ok = (r > 0) & (np.abs(dc) <= r)
        base = np.arctan2(db, da)
        for sign in (1.0, -1.0):
            t = np.mod(base + sign * half, 2 * np.pi)
            out.append(np.where(ok & (t > start) & (t < end) & (t > lo) & (t < hi), t, np.nan))
    kinds = np.zeros((n, 8), bool)
    kinds[:, :2] = True
    return np.stack(out, 1), kinds


def _above(sc: _Scores, j, a, x, t, scale) -> np.ndarray:
    """Is x strictly above a at t (beyond the tie tolerance)?"""
    return sc.at(j, x, t) - sc.at(j, a, t) > TIE * scale


def exact_curve(path, val, fixed_scores: np.ndarray, pair_query: np.ndarray,
                pair_local: np.ndarray, objective: str, bounds: tuple[float, float],
                block_elems: int = 2 ** 21) -> StepCurve:
    """The exact step curve of ``objective`` over γ in ``bounds``.

    path: the fit's :class:`~nudge_core.gamma_path.GammaPath` over the m active records; val: the
    validation QuerySet; fixed_scores: (n_val, K) each query's best scores among never-moved
    records (K >= the objective's k, or all of them); pair_query / pair_local: (n_pairs,) every
    (validation query, relevant record) pair, the record as an index into the active set.
    """
    family_k = parse_objective(objective)
    g_lo, g_hi = (float(b) for b in bounds)
    # θ = 2 arcsin(sqrt(γ)/2) and γ = 4 sin²(θ/2): no cancellation near 0 (1 - cos θ would lose it)
    to_t = (lambda g: float(2 * np.arcsin(min(np.sqrt(g) / 2, 1.0)))) if path.unit_norm else float
    lo, hi = to_t(g_lo), to_t(g_hi)
    sc = _Scores(path, val.emb, np.asarray(fixed_scores))
    low, high = sc.ranges(lo, hi)
    scale = np.maximum(np.nanmax(np.abs(np.where(np.isfinite(sc.c), sc.c, 0)), axis=1), 1e-300)
    n_pairs, width = len(pair_query), sc.c.shape[1]
    r0 = np.ones(n_pairs, np.int64)          # rank on (lo, first event)
    point0 = np.zeros(n_pairs, np.int64)     # rank at lo minus r0
    events = []                              # (t, pair, d_after, d_point)
    step = max(1, block_elems // max(width, 1))
    for s in range(0, n_pairs, step):
        pj, pa = pair_query[s:s + step], pair_local[s:s + step]
        p_idx = np.arange(s, s + len(pj))
        x_low, x_high = low[pj], high[pj]
        a_low, a_high = low[pj, pa][:, None], high[pj, pa][:, None]
        tol = (TIE * scale[pj])[:, None]
        others = np.ones_like(x_low, bool)
        others[np.arange(len(pj)), pa] = False
        always = others & (x_low > a_high + tol)
        r0[s:s + len(pj)] += always.sum(axis=1)
        pp, xx = np.nonzero(others & ~always & (x_high >= a_low - tol))
        if not len(pp):
            continue
        j, a, pid = pj[pp], pa[pp], p_idx[pp]
        sc_scale = scale[j]
        cand, boundary = _candidates(sc, j, a, xx, lo, hi)
        order = np.argsort(cand, axis=1)  # NaN last
        cand = np.take_along_axis(cand, order, 1)
        boundary = np.take_along_axis(boundary, order, 1)
        valid = ~np.isnan(cand)
        nxt = np.concatenate([cand[:, 1:], np.full((len(cand), 1), np.nan)], 1)
        nxt = np.where(np.isnan(nxt), hi, nxt)
        state0 = _above(sc, j, a, xx, np.where(valid[:, 0], (lo + cand[:, 0]) / 2, (lo + hi) / 2),
                        sc_scale)
        at_lo = _above(sc, j, a, xx, np.full(len(j), lo), sc_scale)
        r0[:] += np.bincount(pid, weights=state0, minlength=n_pairs).astype(np.int64)
        point0[:] += np.bincount(pid, weights=at_lo.astype(int) - state0,
                                 minlength=n_pairs).astype(np.int64)
        before = state0
        for c in range(cand.shape[1]):
            ok = valid[:, c]
            if not ok.any():
                break
            t = np.where(ok, cand[:, c], lo)
            after = _above(sc, j, a, xx, np.where(ok, (t + nxt[:, c]) / 2, lo), sc_scale)
            exact_at = _above(sc, j, a, xx, t, sc_scale)
            at_point = np.where(boundary[:, c], exact_at, before & after)
            after = np.where(ok, after, before)
            keep = ok & ((after != before) | (at_point != before))
            events.append((cand[keep, c], pid[keep], after[keep].astype(np.int64) - before[keep],
                           at_point[keep].astype(np.int64) - before[keep]))
            before = after
    return _sweep_events(val, pair_query, r0, point0, events, family_k, objective, lo, hi,
                         path.unit_norm, (g_lo, g_hi))


def _sweep_events(val, pair_query, r0, point0, events, family_k, objective, lo, hi, unit_norm,
                  gamma_bounds) -> StepCurve:
    """Sum each query's objective step function over the sorted events."""
    t = np.concatenate([e[0] for e in events]) if events else np.zeros(0)
    pid = np.concatenate([e[1] for e in events]).astype(np.int64) if events else np.zeros(0, np.int64)
    d_after = np.concatenate([e[2] for e in events]) if events else np.zeros(0, np.int64)
    d_point = np.concatenate([e[3] for e in events]) if events else np.zeros(0, np.int64)
    grades = np.concatenate(val.grades).astype(np.float64) if len(val) else np.zeros(0)
    starts = np.concatenate([[0], np.cumsum([len(x) for x in val.answers])])
    query_of_event = pair_query[pid]
    all_t, all_after, all_point = [], [], []
    start_point = start_after = 0.0
    by_query = np.argsort(query_of_event, kind="stable")
    bounds = np.searchsorted(query_of_event[by_query], np.arange(len(val) + 1))
    for q in range(len(val)):
        pairs = np.arange(starts[q], starts[q + 1])
        g = grades[pairs]
        sel = by_query[bounds[q]:bounds[q + 1]]
        base = r0[pairs][None, :]
        f0 = objective_of_ranks(base, g, family_k)[0]
        start_after += f0
        start_point += objective_of_ranks(base + point0[pairs][None, :], g, family_k)[0]
        if not len(sel):
            continue
        times, inverse = np.unique(t[sel], return_inverse=True)
        col = pid[sel] - starts[q]
        steps = np.zeros((len(times), len(pairs)), np.int64)
        np.add.at(steps, (inverse, col), d_after[sel])
        extra = np.zeros_like(steps)
        np.add.at(extra, (inverse, col), d_point[sel])
        after_ranks = base + np.cumsum(steps, axis=0)
        before_ranks = np.vstack([base, after_ranks[:-1]])
        f_after = objective_of_ranks(after_ranks, g, family_k)
        f_before = np.concatenate([[f0], f_after[:-1]])
        f_point = objective_of_ranks(before_ranks + extra, g, family_k)
        all_t.append(times)
        all_after.append(f_after - f_before)
        all_point.append(f_point - f_before)
    n = max(len(val), 1)
    if all_t:
        t = np.concatenate(all_t)
        times, inverse = np.unique(t, return_inverse=True)
        d_a = np.bincount(inverse, weights=np.concatenate(all_after), minlength=len(times))
        d_p = np.bincount(inverse, weights=np.concatenate(all_point), minlength=len(times))
    else:
        times, d_a, d_p = np.zeros(0), np.zeros(0), np.zeros(0)
    after = start_after + np.concatenate([[0.0], np.cumsum(d_a)])
    point = np.concatenate([[start_point], after[:-1] + d_p])
    breaks = np.concatenate([[lo], times])
    gb = 4 * np.sin(breaks / 2) ** 2 if unit_norm else breaks
    gb[0] = gamma_bounds[0]
    # distinct θ can round to one γ: merge them (the last state after, the best at the point)
    gb, first = np.unique(gb, return_index=True)
    last = np.append(first[1:], len(breaks)) - 1
    point = np.maximum.reduceat(point, first)
    return StepCurve(objective, gamma_bounds[0], gamma_bounds[1], gb, point / n, after[last] / n)
