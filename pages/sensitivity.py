"""Sensitivity: quality on train / validation / test / OOD queries as γ grows over orders of magnitude."""

from __future__ import annotations

import streamlit as st

from explorer_app import runs, session, sources
from explorer_app.figures import sensitivity_figure
from nudge_core import registry
from nudge_core.registry import label
from explorer_app.widgets import ProgressSlot, page_errors

session.boot()
with page_errors():  # the page's one error boundary: tracebacks go to the log
    st.title("6 · Sensitivity")
    st.markdown(
        "How far should records move? Each chart sweeps γ over orders of magnitude (log axis) and "
        "shows NDCG@10 on training queries (what NUDGE fits), validation queries (what picks γ), "
        "test and OOD queries. Where test quality stops rising while training quality keeps "
        "climbing, NUDGE starts to overfit; with several split seeds a band shows the spread.")

    result = runs.require_result(show_progress=False)
    ds, src = sources.current_dataset()
    cfg = st.session_state.split_cfg
    c1, c2, c3 = st.columns(3)
    gamma_methods = [m for m in result.methods if registry.get(m).gamma is not None]
    methods = c1.multiselect("Methods", gamma_methods, default=gamma_methods, format_func=label,
                             help="the methods with a γ in this run (chosen on the Fine-tune page)")
    n_points = c2.slider("γ values", 8, 60, 25, 1)
    if cfg["mode"] == "file":
        seeds = [cfg["seed"]]
        c3.caption("An uploaded split has no seed to vary.")
    else:
        n_seeds = c3.slider("Split seeds (band)", 1, 5, 1, 1)
        seeds = [cfg["seed"] + i for i in range(n_seeds)]
    if not methods:
        st.info("Choose a method.")
        st.stop()

    progress = ProgressSlot("Sweeping γ: ")
    sweep = runs.sweep(ds, seeds, tuple(methods), n_points, progress)
    progress.clear()
    for m in methods:
        fig = sensitivity_figure(sweep, m)
        curve = getattr(result.methods[m].estimator, "curve_", None)
        if curve is not None:  # this run's exact validation objective over the user's bounds
            keep = curve.breaks > 0  # a log axis
            fig.add_scatter(x=curve.breaks[keep], y=curve.after[keep], mode="lines",
                            line=dict(color="black", shape="hv", width=1),
                            name=f"validation {curve.objective} (exact, this run's bounds)")
        st.plotly_chart(fig, width="stretch")
        marks = sweep.markers(m)
        chosen = ", ".join(f"{g:.3g}" for g in sweep.chosen.get(m, []))
        over = f"{marks['overfit']:.3g}" if marks["overfit"] is not None else "not reached in this range"
        st.caption(f"{label(m)}: validation NDCG@10 peaks at γ ≈ {marks['val_peak']:.3g}, test at "
                   f"γ ≈ {marks['test_peak']:.3g}; overfitting from γ ≈ {over}. "
                   f"γ your Fine-tune settings choose: {chosen} (by its validation objective, "
                   f"{registry.get(m).objective}, which is not the NDCG@10 drawn here, so the two "
                   "need not peak at the same γ).")
    st.caption(f"{len(seeds)} split seed(s), {n_points} γ values per method; swept in "
               f"{sweep.seconds:.1f} s (one fit per method and seed, then closed-form re-scoring).")
