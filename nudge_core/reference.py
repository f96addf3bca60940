"""The authors' ``nudge-ft`` 0.1.2 on our inputs: the independent reference the engine is checked
against (tests) and timed against (benchmarks). Needs the ``reference`` extra; nothing else in
the engine imports it.
"""

from __future__ import annotations

import contextlib
import io
import time

import numpy as np

from .data import QuerySet


def reference_sets(qs: QuerySet) -> dict:
    """A QuerySet in nudge-ft's format: query embeddings and per-query answer rows."""
    return {"q_embs": np.ascontiguousarray(qs.emb, np.float32),
            "q_ans_indx": [a.tolist() for a in qs.answers]}


def run_reference(unit_norm: bool, X: np.ndarray, tr: QuerySet, va: QuerySet,
                  **kw) -> tuple[np.ndarray, float, float]:
    """(embeddings, γ chosen, seconds) of nudge-ft's NUDGEN (``unit_norm``) or NUDGEM on a copy of
    ``X`` (n, d); ``kw`` go to its ``finetune_embeddings`` (``gamma``, ``val_k``); its prints are
    silenced.

    γ is read by wrapping the instance's own γ step (NUDGEM's interval sweep returns it; NUDGEN's
    last ``_sol_maxm`` call uses the best γ); the package itself is not modified.
    """
    from nudge import NUDGEM, NUDGEN

    est = NUDGEN() if unit_norm else NUDGEM()
    seen: list[float] = []
    step = "_sol_maxm" if unit_norm else "_get_point_of_most_intersection"
    inner = getattr(est, step)

    def spy(*a, **k):
        out = inner(*a, **k)
        seen.append(float(a[0] if unit_norm else out))
        return out
    setattr(est, step, spy)
    Xc = np.array(X, dtype=np.float32)  # the reference wants a writable in-memory array
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        out = est.finetune_embeddings(Xc, reference_sets(tr), reference_sets(va), **kw)
        seconds = time.perf_counter() - t0
    gamma = float(kw["gamma"]) if kw.get("gamma") is not None else (seen[-1] if seen else float("nan"))
    return out, gamma, seconds
