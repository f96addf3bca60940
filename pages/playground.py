"""Playground: NUDGE's geometry on the unit circle or sphere, where nothing is projected."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer_app import session
from explorer_app.figures import gamma_curve_figure
from explorer_app.geometry import playground_figure
from explorer_app.widgets import page_errors
from nudge_core import registry
from nudge_core.playground import PRESETS, build, fit_at, preset, rankings, validation_curve
from nudge_core.registry import label

session.boot()
with page_errors():  # the page's one error boundary: tracebacks go to the log
    st.title("8 · Playground")
    st.markdown(
        "Here the records live on the unit circle (or sphere), so every distance you see is the "
        "real one: nothing is projected. Pick a preset, move γ, and watch each record move along "
        "its exact path: NUDGE-M by exactly γ toward its training queries (off the circle), "
        "NUDGE-N along the circle within √γ. All positions, rankings and curves are the engine's.")
    ss = st.session_state
    methods = registry.gamma_methods()
    c1, c2, c3 = st.columns([2, 1, 1])
    name = c1.selectbox("Preset", PRESETS, key="pg_preset",
                        format_func=lambda p: preset(p).title if p != "random" else "Random problem")
    dim = 3 if c2.radio("Space", ["2-D circle", "3-D sphere"], horizontal=True, key="pg_dim") \
        .startswith("3") else 2
    big = c3.toggle("Big fonts (class)", key="pg_big")
    kw = {}
    if name == "random":
        r1, r2, r3 = st.columns(3)
        kw = {"seed": int(r1.number_input("Seed", 0, 10_000, 0, key="pg_seed")),
              "n_records": int(r2.number_input("Records", 2, 200, 12, key="pg_nrec")),
              "n_queries": int(r3.number_input("Queries", 5, 200, 24, key="pg_nq"))}
    toy = preset(name, dim, **kw)

    with st.expander("Edit the problem (angles in degrees; queries name their relevant record)"):
        records = [{"record": i, "angle": float(np.degrees(np.arctan2(r[1], r[0])))}
                   for i, r in enumerate(toy.records)]
        queries = [{"part": part, "angle": float(np.degrees(np.arctan2(q[1], q[0]))),
                    "relevant record": int(a[0])}
                   for part, qs in (("train", toy.train), ("val", toy.val), ("test", toy.test),
                                    ("ood", toy.ood)) if qs is not None
                   for q, a in zip(qs.emb, qs.answers)]
        edited_r = st.data_editor(records, num_rows="dynamic", key=f"pg_rec_{name}_{dim}",
                                  disabled=["record"])
        edited_q = st.data_editor(queries, num_rows="dynamic", key=f"pg_q_{name}_{dim}",
                                  column_config={"part": st.column_config.SelectboxColumn(
                                      options=["train", "val", "test", "ood"])})
        if edited_r != records or edited_q != queries:
            try:
                toy = build("edited", toy.title + " (edited)", toy.explanation,
                            [r["angle"] for r in edited_r],
                            [(q["part"], q["angle"], {int(q["relevant record"]): 1}) for q in edited_q],
                            dim, toy.steps)
                st.caption("Showing your edited problem; clear the edits (the table's own reset, or "
                           "pick another preset) to go back.")
            except (ValueError, KeyError, TypeError) as exc:
                st.error(f"This edit cannot be used: {exc}", icon=":material/error:")

    st.subheader(toy.title)
    st.markdown(toy.explanation)
    if toy.steps:
        step = ss.setdefault("pg_step", 0) % len(toy.steps)
        b1, b2, b3 = st.columns([1, 1, 6])
        if b1.button("◀ Previous", key="pg_prev"):
            step = ss.pg_step = (step - 1) % len(toy.steps)
            for m in methods:
                ss[f"pg_gamma_{m}"] = toy.steps[step].gamma
        if b2.button("Next ▶", key="pg_next"):
            step = ss.pg_step = (step + 1) % len(toy.steps)
            for m in methods:
                ss[f"pg_gamma_{m}"] = toy.steps[step].gamma
        b3.info(f"Lesson step {step + 1} of {len(toy.steps)}: {toy.steps[step].text}")
    gammas = {}
    for col, m in zip(st.columns(len(methods)), methods):
        gammas[m] = col.slider(f"{label(m)} γ", 0.0, 4.0, step=0.01, key=f"pg_gamma_{m}")
    # one fit per method at its slider's γ (and one of the reference), for both the figure and
    # the table
    now = {m: fit_at(toy, m, gammas[m]) for m in methods}
    reference = registry.get(registry.REFERENCE).build().fit(toy.records, toy.train, toy.val)
    fig = playground_figure(toy, {m: now[m].embeddings_ for m in methods}, gammas, big)
    left, right = st.columns([3, 2])
    left.plotly_chart(fig, width="stretch")
    with right:
        st.markdown("**Top 3 records per query** (at each slider's γ)")
        rows = []
        for part, qs in (("val", toy.val), ("test", toy.test), ("ood", toy.ood), ("train", toy.train)):
            if qs is None or not len(qs):
                continue
            before = rankings(toy, reference, qs)
            after = {m: rankings(toy, now[m], qs) for m in methods}
            for j, qid in enumerate(qs.ids):
                row = {"query": qid, "relevant": ", ".join(map(str, qs.answers[j])),
                       "before": " ".join(map(str, before[j, :3]))}
                row.update({label(m): " ".join(map(str, after[m][j, :3])) for m in methods})
                rows.append(row)
        st.dataframe(rows, hide_index=True, width="stretch")
    st.markdown("**Validation curve** (the engine's exact search; dashed: the γ it picks, orange: "
                "the slider)")
    fits = {m: validation_curve(toy, m, exact=True, gamma_bounds=(0.0, 4.0)) for m in methods}
    st.plotly_chart(gamma_curve_figure({m: (f.curve_gammas_, f.curve_objective_) for m, f in fits.items()},
                                       {m: f.gamma_ for m, f in fits.items()}, current=gammas,
                                       exact={m: (f.curve_.lo, f.curve_.hi) for m, f in fits.items()}),
                    width="stretch")
    st.download_button("This figure as HTML (works offline, for slides)",
                       fig.to_html(include_plotlyjs=True, full_html=True).encode("utf-8"),
                       file_name=f"nudge-playground-{toy.name}.html", mime="text/html")
    st.caption("PNG export is left out: plotly's static export needs kaleido and a browser of its "
               "own, which this app does not install; the HTML file opens anywhere and the figure's "
               "camera button saves a PNG from the browser.")
