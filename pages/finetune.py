"""Fine-tune: choose methods and bounds, fit, see how the validation objective depends on γ."""

from __future__ import annotations

import copy

import numpy as np
import streamlit as st

from explorer_app import runs, session
from explorer_app.figures import gamma_axis, gamma_curve_figure
from explorer_app.flags import show_flags
from explorer_app.widgets import gamma_slider, page_errors
from nudge_core import registry
from nudge_core.registry import label
from nudge_core.runspec import SpecError

session.boot()
with page_errors():  # the page's one error boundary: tracebacks go to the log
    st.title("2 · Fine-tune")
    st.markdown(
        "NUDGE moves each record's vector toward the training queries it answers, by at most **γ** "
        "(NUDGE-M: exactly γ; NUDGE-N: unit-length vectors changed by at most √γ). The chart shows, "
        "for each γ, the validation objective that chooses γ (by default NUDGE-M: the share of "
        "validation queries whose first result is relevant; NUDGE-N: recall@val_k), and NUDGE picks "
        "the best γ (dashed line). The sliders re-score the test queries at any other γ instantly.")

    ss = st.session_state
    cfg = copy.deepcopy(ss.settings_cfg)
    MODES = ["automatic", "fixed", "range", "exact"]
    FAMILIES = {"own": "each method's own", "hit": "hit@1", "recall": "recall@k", "ndcg": "NDCG@k",
                "mrr": "MRR@k"}
    unavailable = runs.unavailable_now()
    with st.form("settings"):
        gamma_methods = registry.gamma_methods()
        # full width: the tags of every method stay readable
        cfg["methods"] = st.multiselect(
            "Methods (no fine-tuning is always included)",
            [n for n in registry.names() if n != registry.REFERENCE],
            default=[m for m in cfg["methods"] if m in registry.names()],
            format_func=lambda n: label(n) + (" (unavailable here)" if n in unavailable else ""))
        for name, why in unavailable.items():
            st.caption(f"**{label(name)}** {why}.")
        c1, *gamma_cols = st.columns([1.3] + [1.2] * len(gamma_methods))
        with c1:
            family, _, k = (cfg.get("objective") or "own@10").partition("@")
            o1, o2 = st.columns([2, 1])
            family = o1.selectbox("Validation objective (chooses γ)", list(FAMILIES),
                                  index=list(FAMILIES).index(family), format_func=FAMILIES.get,
                                  help="own: NUDGE-M hit@1, NUDGE-N recall@val_k")
            k = int(o2.number_input("k", 1, runs.K_MAX, int(k), help="cut-off for recall, NDCG and MRR"))
            cfg["objective"] = None if family == "own" else ("hit@1" if family == "hit" else f"{family}@{k}")
            cfg["choose"] = st.radio("Choose γ", ["smallest", "plateau-middle"], horizontal=True,
                                     index=["smallest", "plateau-middle"].index(cfg.get("choose", "smallest")),
                                     help="smallest γ reaching the best value (the paper's rule), or "
                                          "the middle of the widest best plateau (exact search only)")
            # folded: the form stays short, so the results below show on the first screen
            with st.expander("Method parameters (epochs, val_k, batch size, LoRA rank, …)"):
                for name in registry.names():
                    for p in registry.get(name).params:
                        cfg["params"].setdefault(name, {})[p.name] = int(st.number_input(
                            f"{label(name)}: {p.help}", p.minimum, None,
                            int(cfg["params"].get(name, {}).get(p.name, p.default)),
                            key=f"param_{name}_{p.name}"))
        for col, name in zip(gamma_cols, gamma_methods):
            bounds = registry.get(name).gamma
            high = bounds.high if np.isfinite(bounds.high) else None
            g = cfg["gamma"][name]
            auto = ("the grid " + ", ".join(f"{x:g}" for x in bounds.default_grid[:2]) + f", …, "
                    f"{bounds.default_grid[-1]:g}" if bounds.default_grid else "exact, over every γ")
            with col:
                g["mode"] = st.radio(f"{label(name)} γ", MODES, index=MODES.index(g["mode"]),
                                     horizontal=True, key=f"mode_{name}",
                                     help=f"automatic = {auto}; exact = the exact step curve of the "
                                          "objective over [from, to] (step unused)")
                limits = f"{bounds.low:g} … {bounds.high:g}" if high else f"≥ {bounds.low:g}"
                g["value"] = float(st.number_input(f"fixed {label(name)} γ ({limits})", bounds.low, high,
                                                   float(g["value"]), 0.01, format="%.4f",
                                                   key=f"value_{name}"))
                r1, r2, r3 = st.columns(3)
                lo, hi, step = g["range"]
                g["range"] = [float(r1.number_input("from", bounds.low, high, float(lo), 0.01, key=f"lo_{name}")),
                              float(r2.number_input("to", bounds.low, high, float(hi), 0.01, key=f"hi_{name}")),
                              float(r3.number_input("step", 0.0001, high, float(step), 0.01, format="%.4f",
                                                    key=f"step_{name}"))]
        submitted = st.form_submit_button("Fit", type="primary")
    if submitted:
        blocked = [m for m in cfg["methods"] if m in unavailable]
        if not cfg["methods"]:
            st.error("Choose at least one method.")
        elif blocked:  # said before anything runs, not as a failure after
            st.error(" ".join(f"{label(m)} cannot run here: it {unavailable[m]}." for m in blocked),
                     icon=":material/block:")
        else:
            try:
                for name in cfg["methods"]:
                    runs.method_settings(cfg, name)  # the engine's own checks, before anything runs
                ss.settings_cfg = cfg
            except SpecError as exc:
                text = str(exc)
                for name in registry.gamma_methods():  # the form's words, not the CLI flag
                    text = text.replace(f"--gamma-{registry.get(name).gamma_flag}:", f"{label(name)} γ:")
                st.error(text + " Not fitted: the results below are still those of the previous "
                         "settings.", icon=":material/error:")

    result = runs.require_result()

    rows = []
    for name, res in result.methods.items():
        est = res.estimator
        rows.append({"method": label(name), "γ": res.gamma, "fit seconds": round(res.fit_seconds, 3),
                     "validation objective": getattr(est, "objective_", None),
                     "records moved": len(est.moved_) if hasattr(est, "moved_") else None,
                     "test NDCG@10": res.metrics["ndcg@10"]})
    for name in runs.pending_methods(result):  # fitted in the background (see the panel above)
        rows.append({"method": f"{label(name)} (not done)"})
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "validation objective": st.column_config.NumberColumn(
            help="The score on the validation queries that chose each method's γ or best epoch: "
                 + "; ".join(f"{label(m)}: {registry.get(m).objective}" for m in result.methods
                             if m != registry.REFERENCE))})
    st.caption("Validation objective: what chose each method's setting on the validation queries "
               "(NUDGE: its γ; the adaptor and model fine-tuning: their best epoch, by validation "
               "top-1 accuracy). Hover the column's header for each method's.")
    st.caption(f"Whole run: {result.seconds:.2f} s. Split: {result.split.description}; "
               f"{len(result.split.train)} train, {len(result.split.val)} validation, "
               f"{len(result.test)} test queries.")
    show_flags(result)  # bad-result warnings (and the last sweep's peak), where users look first

    nudges = [m for m in result.methods if registry.get(m).gamma is not None]
    if not nudges:
        st.info("Choose " + " or ".join(label(m) for m in registry.gamma_methods())
                + " to see the γ curve.")
        st.stop()

    st.subheader("Re-score at any γ")

    @st.fragment  # a slider move reruns this block only (not the form, the table, the run)
    def rescore(result, nudges: list[str], run_key: str) -> None:
        with page_errors():
            t1, t2 = st.columns(2)
            snap = t1.toggle("Snap the sliders to the validation curve's events (where some "
                             "ranking changes)", key="snap_events")
            show_test = t2.toggle("Also show test NDCG@10 along the same γ axis", value=True)
            ests = {m: result.methods[m].estimator for m in nudges}
            curves = {m: (ests[m].curve_gammas_, ests[m].curve_objective_) for m in nudges}
            chosen = {m: result.methods[m].gamma for m in nudges}
            # the slider directly above the chart it moves, the numbers beside: on screen together
            left, right = st.columns([3, 1], gap="medium", vertical_alignment="top")
            current = {}
            with left:
                for col, m in zip(st.columns(len(nudges)), nudges):
                    with col:
                        current[m] = gamma_slider(m, result.methods[m], curves[m][0], snap, run_key)
            for m in nudges:
                res = result.methods[m]
                metrics, seconds = runs.rescorer(result, m).timed_metrics(current[m])
                with right:
                    st.markdown(f"**{label(m)}** at γ = {current[m]:.4g}")
                    st.metric("test NDCG@10", f"{metrics['ndcg@10']:.4f}",
                              f"{metrics['ndcg@10'] - res.metrics['ndcg@10']:+.4f} vs chosen γ")
                    st.metric("test Recall@10", f"{metrics['recall@10']:.4f}",
                              f"{metrics['recall@10'] - res.metrics['recall@10']:+.4f} vs chosen γ")
                    st.caption(f"re-scored {len(result.test)} test queries in "
                               f"{seconds * 1000:.0f} ms (no refit; chosen γ = {res.gamma:.4g})")
            test_curves = None
            if show_test:
                test_curves = {}
                for m in nudges:
                    # sampled where the axis is
                    grid = np.linspace(*gamma_axis(curves[m][0], chosen[m]), 120)
                    test_curves[m] = (grid, runs.test_curve(result, m, grid))
            exact = {m: (ests[m].curve_.lo, ests[m].curve_.hi) for m in nudges
                     if getattr(ests[m], "curve_", None) is not None}
            with left:
                st.plotly_chart(gamma_curve_figure(curves, chosen, test_curves, current, exact),
                                width="stretch")

    rescore(result, nudges, runs.run_key())
    for m in nudges:
        facts = result.methods[m].estimator.describe()
        if result.spec.method(m).gamma.mode == "fixed":  # nothing was chosen: the user fixed it
            st.caption(f"{label(m)}: γ = {result.methods[m].gamma:g}, fixed in the settings (not "
                       f"chosen); the curve shows validation {facts['objective']} around it.")
            continue
        where = (f"exactly over [{facts['gamma_bounds'][0]:g}, {facts['gamma_bounds'][1]:g}]"
                 if "gamma_bounds" in facts else "on the curve shown")
        st.caption(f"{label(m)}: γ chosen {where} by validation {facts['objective']} "
                   f"({facts['choose']} rule; ties count as success). Default objective: "
                   f"{registry.get(m).objective}.")
    st.page_link("pages/results.py", label="Next: results", icon=":material/arrow_forward:")
