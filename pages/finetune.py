"""Fine-tune: choose methods and bounds, fit, see how the validation objective depends on γ."""

from __future__ import annotations

import numpy as np
import streamlit as st

from nudge_core.figures import gamma_curve_figure, label
from pages import common

common.ensure_app()

st.title("2 · Fine-tune")
st.markdown(
    "NUDGE moves each record's vector toward the training queries it answers, by at most **γ** "
    "(NUDGE-M: exactly γ; NUDGE-N: unit-length vectors changed by at most √γ). The chart shows, "
    "for each γ, the share of validation queries whose first result is relevant; NUDGE picks the "
    "best γ (dashed line). The sliders re-score the test queries at any other γ instantly.")

ss = st.session_state
cfg = dict(ss.settings_cfg)
with st.form("settings"):
    c1, c2, c3 = st.columns([1.3, 1, 1.3])
    with c1:
        cfg["methods"] = st.multiselect(
            "Methods (no fine-tuning is always included)", ["adaptor", "nudge-m", "nudge-n"],
            default=cfg["methods"], format_func=label)
        cfg["val_k"] = int(st.number_input("NUDGE-N validation recall@k (val_k)", 1, 40,
                                           int(cfg["val_k"])))
    with c2:
        cfg["gamma_m_mode"] = st.radio("NUDGE-M γ", ["automatic", "fixed"],
                                       index=["automatic", "fixed"].index(cfg["gamma_m_mode"]),
                                       horizontal=True)
        cfg["gamma_m"] = float(st.number_input("fixed NUDGE-M γ (≥ 0)", 0.0, 100.0,
                                               float(cfg["gamma_m"]), 0.01, format="%.4f"))
    with c3:
        modes = ["automatic", "fixed", "range"]
        cfg["gamma_n_mode"] = st.radio("NUDGE-N γ", modes, index=modes.index(cfg["gamma_n_mode"]),
                                       horizontal=True,
                                       help="automatic = the paper's grid 0, 0.02, …, 0.48")
        cfg["gamma_n"] = float(st.number_input("fixed NUDGE-N γ (0 … 4)", 0.0, 4.0,
                                               float(cfg["gamma_n"]), 0.01, format="%.4f"))
        lo, hi, step = cfg["range"]
        r1, r2, r3 = st.columns(3)
        lo = r1.number_input("from", 0.0, 4.0, float(lo), 0.01)
        hi = r2.number_input("to", 0.0, 4.0, float(hi), 0.01)
        step = r3.number_input("step", 0.001, 4.0, float(step), 0.01, format="%.3f")
        cfg["range"] = [float(lo), float(max(hi, lo)), float(step)]
    submitted = st.form_submit_button("Fit", type="primary")
if submitted:
    if not cfg["methods"]:
        st.error("Choose at least one method.")
    elif cfg["gamma_n_mode"] == "range" and (cfg["range"][1] - cfg["range"][0]) / cfg["range"][2] > 2000:
        st.error("That γ range has more than 2000 points; use a larger step.")
    else:
        ss.settings_cfg = cfg

result = common.require_result()

rows = []
for name, res in result.methods.items():
    est = res.estimator
    rows.append({"method": label(name), "γ": res.gamma, "fit seconds": round(res.fit_seconds, 3),
                 "validation objective": getattr(est, "objective_", None),
                 "records moved": len(est.moved_) if hasattr(est, "moved_") else None,
                 "test NDCG@10": res.metrics["ndcg@10"]})
st.dataframe(rows, hide_index=True, width="stretch")
st.caption(f"Whole run: {result.seconds:.2f} s. Split: {result.split.description}; "
           f"{len(result.split.train)} train, {len(result.split.val)} validation, "
           f"{len(result.test)} test queries.")

nudges = [m for m in ("nudge-m", "nudge-n") if m in result.methods]
if not nudges:
    st.info("Choose NUDGE-M or NUDGE-N to see the γ curve.")
    st.stop()

st.subheader("Re-score at any γ")
current, cols = {}, st.columns(len(nudges))
for col, m in zip(cols, nudges):
    res = result.methods[m]
    top = 4.0 if m == "nudge-n" else float(max(1.0, 4 * (res.gamma or 0)))
    with col:
        g = st.slider(f"{label(m)} γ", 0.0, top, float(min(res.gamma, top)), top / 400,
                      format="%.3f", key=f"slider_{m}")
        current[m] = g
        metrics, seconds = common.rescorer(result, m).timed_metrics(g)
        a, b = st.columns(2)
        a.metric("test NDCG@10", f"{metrics['ndcg@10']:.4f}",
                 f"{metrics['ndcg@10'] - res.metrics['ndcg@10']:+.4f} vs chosen γ")
        b.metric("test Recall@10", f"{metrics['recall@10']:.4f}",
                 f"{metrics['recall@10'] - res.metrics['recall@10']:+.4f} vs chosen γ")
        st.caption(f"re-scored {len(result.test)} test queries in {seconds * 1000:.0f} ms "
                   f"(no refit; chosen γ = {res.gamma:.4g})")

show_test = st.toggle("Also show test NDCG@10 along the same γ axis", value=True)
curves = {m: (result.methods[m].estimator.curve_gammas_, result.methods[m].estimator.curve_objective_)
          for m in nudges}
chosen = {m: result.methods[m].gamma for m in nudges}
test_curves = None
if show_test:
    test_curves = {}
    for m in nudges:
        g = curves[m][0]
        hi = max(float(np.nanmax(g[np.isfinite(g)])) if len(g) else 1.0, 3 * chosen[m], 0.5)
        grid = np.linspace(0, min(hi, 4.0) if m == "nudge-n" else hi, 120)
        test_curves[m] = (grid, common.test_curve(result, m, grid))
st.plotly_chart(gamma_curve_figure(curves, chosen, test_curves, current), width="stretch")
st.caption("NUDGE-M's objective is exact at every γ (a step function: it changes only where some "
           "validation query's top record changes). NUDGE-N is evaluated on its grid.")
st.page_link("pages/results.py", label="Next: results", icon=":material/arrow_forward:")
