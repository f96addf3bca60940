"""Sensitivity: quality on train / validation / test / OOD queries as γ grows over orders of magnitude."""

from __future__ import annotations

import streamlit as st

from explorer_app import runs, session, sources
from explorer_app.figures import figures_html, sensitivity_figure
from explorer_app.flags import remember_sweep
from nudge_core.exports import rows_csv, seed_rows, sweep_json, sweep_rows
from nudge_core.sensitivity import CHOSEN_METRICS
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
        n_seeds = c3.slider("Split seeds (band)", 1, 20, 1, 1,
                            help="each seed re-draws the split and refits; 20 seeds take about "
                                 "20 times as long as one")
        seeds = [cfg["seed"] + i for i in range(n_seeds)]
    if not methods:
        st.info("Choose a method.")
        st.stop()

    progress = ProgressSlot("Sweeping γ: ")
    sweep = runs.sweep(ds, seeds, tuple(methods), n_points, progress)
    progress.clear()
    remember_sweep(sweep)  # Results flags a chosen γ far from the test peak; Export adds the figure
    figs = {}
    for m in methods:
        fig = sensitivity_figure(sweep, m)
        curve = getattr(result.methods[m].estimator, "curve_", None)
        if curve is not None:  # this run's exact validation objective over the user's bounds
            keep = curve.breaks > 0  # a log axis
            fig.add_scatter(x=curve.breaks[keep], y=curve.after[keep], mode="lines",
                            line=dict(color="black", shape="hv", width=1),
                            name=f"validation {curve.objective} (exact, this run's bounds)")
        st.plotly_chart(fig, width="stretch")
        figs[f"Sensitivity: {label(m)}"] = fig
        marks = sweep.markers(m)
        over = f"{marks['overfit']:.3g}" if marks["overfit"] is not None else "not reached in this range"
        st.caption(f"{label(m)}: validation NDCG@10 peaks at γ ≈ {marks['val_peak']:.3g}, test at "
                   f"γ ≈ {marks['test_peak']:.3g}; overfitting from γ ≈ {over}. "
                   + (f"Your Fine-tune settings fix γ at {result.spec.method(m).gamma.value:g}; nothing "
                      "is chosen on validation." if result.spec.method(m).gamma.mode == "fixed" else
                      f"Your Fine-tune settings choose γ by the validation objective, "
                      f"{registry.get(m).objective}. That is not the NDCG@10 drawn here, so the two "
                      "need not peak at the same γ; the table below gives the γ chosen on each seed."))
    st.caption(f"{len(seeds)} split seed(s), {n_points} γ values per method; swept in "
               f"{sweep.seconds:.1f} s (one fit per method and seed, then closed-form re-scoring).")

    st.subheader("Seed by seed")
    st.markdown("For each split seed: the γ your Fine-tune settings choose on that split and what "
                "that fit scores on its test (and OOD) queries; Δ is the change against no "
                "fine-tuning on the same split. A γ that jumps between seeds, or a Δ that changes "
                "sign, says the choice is fragile.")
    rows = seed_rows(sweep, seeds)
    table = [dict(r, method=label(r["method"])) for r in rows]
    shown_metric = st.columns([1, 3])[0].selectbox("Metric in the table", list(CHOSEN_METRICS),
                                                   help="every metric is in the CSV and JSON downloads")
    parts = [p for p in ("test", "ood") if any(f"{p} {shown_metric}" in r for r in rows)]
    order = ["seed", "method", "chosen_gamma"] + [c for p in parts for c in
                                                  (f"{p} {shown_metric}", f"{p} Δ{shown_metric}")]
    config = {"seed": st.column_config.NumberColumn(width=60),
              "chosen_gamma": st.column_config.NumberColumn("chosen γ", format="%.4g")}
    for p in parts:
        name = "OOD" if p == "ood" else p
        config[f"{p} {shown_metric}"] = st.column_config.NumberColumn(
            f"{name} {shown_metric}", format="%.4f")
        config[f"{p} Δ{shown_metric}"] = st.column_config.NumberColumn(
            f"{name} Δ vs no fine-tuning", format="%+.4f")
    st.dataframe(table, hide_index=True, width="stretch", column_order=order, column_config=config)
    stem = ds.name.replace(" ", "_") + "-sensitivity"
    d1, d2, d3, d4 = st.columns(4)
    d1.download_button("Sweep (JSON)", lambda: sweep_json(sweep, seeds), file_name=f"{stem}.json",
                       mime="application/json")
    d2.download_button("Curves (CSV)", lambda: rows_csv(sweep_rows(sweep, seeds)),
                       file_name=f"{stem}-curves.csv", mime="text/csv")
    d3.download_button("Seed table (CSV)", lambda: rows_csv(rows), file_name=f"{stem}-seeds.csv",
                       mime="text/csv")
    d4.download_button("Figures (HTML, works offline)",
                       lambda: figures_html(figs, f"NUDGE Explorer sensitivity: {ds.name}"),
                       file_name=f"{stem}.html", mime="text/html")
