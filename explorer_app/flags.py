"""Warning signs about the current run, where the user looks first (Results, Fine-tune pages).

The findings come from :func:`nudge_core.diagnostics.diagnose`; this module only draws them and
remembers, per browser session, the sensitivity sweep last drawn for the current run (so Results
and Export can use it without sweeping again).
"""

from __future__ import annotations

import streamlit as st

from nudge_core.diagnostics import diagnose
from nudge_core.registry import REFERENCE, label

from . import runs

_SWEEP = "sweep_of_run"  # session-state key: {"run": run key, "sweep": SweepResult}


def remember_sweep(sweep) -> None:
    """Keep ``sweep`` (the Sensitivity page's) as this session's sweep of the current run."""
    st.session_state[_SWEEP] = {"run": runs.run_key(), "sweep": sweep}


def last_sweep():
    """The sweep the Sensitivity page drew for the *current* run (same data, split, settings and
    OOD set), or None when it has not been drawn since they last changed."""
    kept = st.session_state.get(_SWEEP)
    if not kept:
        return None
    try:
        current = runs.run_key()
    except Exception:  # noqa: BLE001 - invalid settings: there is no current run to match
        return None
    return kept["sweep"] if kept["run"] == current else None


def show_flags(result, sweep=None) -> None:
    """Warnings (``st.warning``) and notes (``st.info``) about ``result``: a method that does
    worse than no fine-tuning, a γ at the edge of what was searched, a γ far from the sensitivity
    sweep's test peak (``sweep``, default :func:`last_sweep`), a gain that may be chance. Says so in
    one line when there is nothing to flag."""
    sweep = last_sweep() if sweep is None else sweep
    flags = diagnose(result, sweep)
    for flag in flags:
        if flag.severity == "warning":
            st.warning(flag.message, icon=":material/warning:")
        else:
            st.info(flag.message, icon=":material/info:")
    if not flags:
        checked = ", ".join(label(m) for m in result.methods if m != REFERENCE)
        st.caption(f"Checks passed for {checked}: none does worse than no fine-tuning on the test"
                   + (" or OOD" if result.ood is not None else "") + " queries, no gain is within "
                   "the noise, and no searched γ sits at the edge of its range.")
    elif sweep is None and any(result.methods[m].gamma is not None for m in result.methods):
        st.caption("Open the **Sensitivity** page to also check each chosen γ against where the "
                   "test curve peaks.")
