"""Sensitivity: quality on train / validation / test / OOD queries as γ grows over orders of magnitude."""

from __future__ import annotations

import streamlit as st

from nudge_core.figures import label, sensitivity_figure
from pages import common

common.ensure_app()

st.title("6 · Sensitivity")
st.markdown(
    "How far should records move? Each chart sweeps γ over orders of magnitude (log axis) and "
    "shows NDCG@10 on training queries (what NUDGE fits), validation queries (what picks γ), "
    "test and OOD queries. Where test quality stops rising while training quality keeps "
    "climbing, NUDGE starts to overfit; with several split seeds a band shows the spread.")

result = common.require_result(show_progress=False)
ds, src = common.current_dataset()
cfg = st.session_state.split_cfg
c1, c2, c3 = st.columns(3)
methods = c1.multiselect("Methods", ["nudge-m", "nudge-n"], default=["nudge-m", "nudge-n"],
                         format_func=label)
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

box = st.empty()


def progress(fraction: float, message: str) -> None:
    box.progress(min(1.0, fraction), text=f"Sweeping γ: {message}")


sweep = common.sweep(ds, seeds, tuple(methods), n_points, progress)
box.empty()
for m in methods:
    st.plotly_chart(sensitivity_figure(sweep, m), width="stretch")
    marks = sweep.markers(m)
    chosen = ", ".join(f"{g:.3g}" for g in sweep.chosen.get(m, []))
    over = f"{marks['overfit']:.3g}" if marks["overfit"] is not None else "not reached in this range"
    st.caption(f"{label(m)}: validation peaks at γ ≈ {marks['val_peak']:.3g}, test at "
               f"γ ≈ {marks['test_peak']:.3g}; overfitting from γ ≈ {over}. "
               f"γ chosen by the search: {chosen}.")
st.caption(f"{len(seeds)} split seed(s), {n_points} γ values per method; swept in "
           f"{sweep.seconds:.1f} s (one fit per method and seed, then closed-form re-scoring).")
