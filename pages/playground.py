"""Playground: NUDGE's geometry on the unit circle or sphere, where nothing is projected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from explorer_app import session
from explorer_app.figures import gamma_curve_figure
from explorer_app.geometry import (add_click_rings, clicked_angle, playground_figure, png_bytes,
                                   png_unavailable, without_click_rings)
from explorer_app.widgets import page_errors
from nudge_core import registry
from nudge_core.playground import (PARTS, PRESETS, describe, fit_at, from_tables, move, preset,
                                   rankings, validation_curve)
from nudge_core.registry import label

NOTHING = "— nothing (clicks do nothing) —"


def set_step(step: int, toy) -> None:
    """Lesson step ``step``: the sliders of every method at that step's γ."""
    ss = st.session_state
    ss.pg_step = step
    for m in registry.gamma_methods():
        ss[f"pg_gamma_{m}"] = toy.steps[step].gamma if toy.steps else 0.0


def on_click() -> None:
    """A click on the 2-D figure (a plotly selection): remember its direction for the run."""
    ss = st.session_state
    ss.pg_click = clicked_angle(ss.get(f"pg_fig_{ss.pg_problem['v']}"))


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
    big = c3.toggle("Class mode: big fonts", key="pg_big")
    kw = {}
    if name == "random":
        r1, r2, r3 = st.columns(3)
        kw = {"seed": int(r1.number_input("Seed", 0, 10_000, 0, key="pg_seed")),
              "n_records": int(r2.number_input("Records", 2, 200, 12, key="pg_nrec")),
              "n_queries": int(r3.number_input("Queries", 5, 200, 24, key="pg_nq"))}
    base = preset(name, dim, **kw)

    # The problem on screen: the preset, or the user's edit of it (tables of angles, kept in the
    # session; "v" renews the edit tables and the figure's widget after each applied change).
    source = (name, dim, tuple(sorted(kw.items())))
    prob = ss.get("pg_problem")
    if prob is None or prob["source"] != source:
        records, queries = describe(base)
        prob = ss.pg_problem = {"source": source, "records": records, "queries": queries,
                                "edited": False, "v": prob["v"] + 1 if prob else 0}
        set_step(0, base)
    toy = from_tables(base, prob["records"], prob["queries"]) if prob["edited"] else base
    click = ss.pop("pg_click", None)
    target = ss.get("pg_target", NOTHING)
    if click is not None and target != NOTHING and dim == 2:
        try:
            records, queries = move(prob["records"], prob["queries"], target, click)
            toy = from_tables(base, records, queries)
            prob.update(records=records, queries=queries, edited=True, v=prob["v"] + 1)
        except ValueError as exc:
            st.error(f"This move cannot be used: {exc}", icon=":material/error:")

    with st.expander("Edit the problem: move points (click, or type angles in degrees), add or "
                     "remove rows, relabel a query's relevant record", expanded=prob["edited"]):
        e1, e2 = st.columns([3, 1])
        points = [NOTHING] + [f"record {i}" for i in range(len(prob["records"]))] \
            + [f"query {j}" for j in range(len(prob["queries"]))]
        parts = [q["part"] for q in prob["queries"]]
        e1.selectbox("Point that a click on the 2-D figure moves (the click is projected onto "
                     "the circle)", points, key="pg_target",
                     format_func=lambda p: f"{p} ({parts[int(p.split()[1])]})"
                     if p.startswith("query") else p)
        if e2.button("Reset to the preset", key="pg_reset", disabled=not prob["edited"]):
            records, queries = describe(base)
            prob.update(records=records, queries=queries, edited=False, v=prob["v"] + 1)
            toy = base
        t1, t2 = st.columns(2)
        edited_r = t1.data_editor(prob["records"], num_rows="dynamic", key=f"pg_rec_{prob['v']}",
                                  disabled=["record"])
        edited_q = t2.data_editor(prob["queries"], num_rows="dynamic", key=f"pg_q_{prob['v']}",
                                  column_config={"part": st.column_config.SelectboxColumn(
                                      options=list(PARTS))})
        if edited_r != prob["records"] or edited_q != prob["queries"]:
            try:
                toy = from_tables(base, edited_r, edited_q)
                records = [{"record": i, "angle": float(r["angle"])} for i, r in enumerate(edited_r)]
                queries = [{"part": q["part"], "angle": float(q["angle"]),
                            "relevant record": int(float(q["relevant record"]))} for q in edited_q]
                prob.update(records=records, queries=queries, edited=True, v=prob["v"] + 1)
            except ValueError as exc:
                st.error(f"This edit cannot be used: {exc}", icon=":material/error:")
        if prob["edited"]:
            st.caption("Showing your edited problem; **Reset to the preset** goes back.")
        if dim == 3:
            st.caption("In 3-D, edit the tables (the angle is the azimuth); clicks move points "
                       "on the 2-D circle only.")

    st.subheader(toy.title)
    st.markdown(f"#### {toy.explanation}" if big else toy.explanation)
    if toy.steps:
        step = min(ss.get("pg_step", 0), len(toy.steps) - 1)
        b1, b2, b3 = st.columns([1, 1, 6])
        b1.button("◀ Previous", key="pg_prev", disabled=step == 0, on_click=set_step,
                  args=(step - 1, toy))
        b2.button("Next ▶", key="pg_next", disabled=step == len(toy.steps) - 1, on_click=set_step,
                  args=(step + 1, toy))
        text = f"Lesson step {step + 1} of {len(toy.steps)}: {toy.steps[step].text}"
        b3.info(f"### {text}" if big else text)
    gammas = {}
    for col, m in zip(st.columns(len(methods)), methods):
        gammas[m] = col.slider(f"{label(m)} γ", 0.0, 4.0, step=0.01, key=f"pg_gamma_{m}")
    # one fit per method at its slider's γ (and one of the reference), for the figure and the table
    now = {m: fit_at(toy, m, gammas[m]) for m in methods}
    reference = registry.get(registry.REFERENCE).build().fit(toy.records, toy.train, toy.val)
    fig = playground_figure(toy, {m: now[m].embeddings_ for m in methods}, gammas, big)
    # class mode: the figure the full width of the page (a projector), the rankings under it
    left, right = (st.container(), st.container()) if big else st.columns([3, 2])
    with left:
        if dim == 2:
            st.plotly_chart(add_click_rings(fig), width="stretch", on_select=on_click,
                            selection_mode="points", key=f"pg_fig_{prob['v']}")
        else:
            st.plotly_chart(fig, width="stretch", key="pg_fig_3d")
    with right:
        st.markdown(("#### " if big else "") + "**Top 3 records per query** (at each slider's γ)")
        rows = []
        for part in ("val", "test", "ood", "train"):
            qs = getattr(toy, part)
            if qs is None or not len(qs):
                continue
            before = rankings(toy, reference, qs)
            after = {m: rankings(toy, now[m], qs) for m in methods}
            for j, qid in enumerate(qs.ids):
                row = {"query": qid, "relevant": ", ".join(map(str, qs.answers[j])),
                       "before": " ".join(map(str, before[j, :3]))}
                row.update({label(m): " ".join(map(str, after[m][j, :3])) for m in methods})
                rows.append(row)
        if big:  # a styled HTML table: the font size a class can read from the back
            st.table(pd.DataFrame(rows).style.hide(axis="index")
                     .set_properties(**{"font-size": "1.35rem"}))
        else:
            st.dataframe(rows, hide_index=True, width="stretch")
    st.markdown(("#### " if big else "") + "**Validation curve** (the engine's exact search: a step "
                "function of γ; dashed: the γ it picks, orange: the slider)")
    fits = {m: validation_curve(toy, m, exact=True, gamma_bounds=(0.0, 4.0)) for m in methods}
    # the engine lists the curve's breakpoints; its last value holds up to the slider's end (4)
    curve = gamma_curve_figure({m: (np.append(f.curve_gammas_, 4.0), np.append(f.curve_objective_,
                                                                              f.curve_objective_[-1]))
                                for m, f in fits.items()}, {m: f.gamma_ for m, f in fits.items()},
                               current=gammas,
                               exact={m: (f.curve_.lo, f.curve_.hi) for m, f in fits.items()})
    # the bounds are the whole axis here: drop their label, which would sit on "chosen γ"
    curve.update_layout(annotations=[a for a in curve.layout.annotations if a.text != "allowed γ"])
    curve.update_xaxes(range=[-0.05, 4.05]).update_yaxes(range=[-0.05, 1.08], secondary_y=False)
    if big:
        curve.update_layout(font=dict(size=18))
    st.plotly_chart(curve, width="stretch")
    d1, d2 = st.columns(2)

    def export():  # the figure without the page's click rings, made only when a file is asked for
        return without_click_rings(fig) if dim == 2 else fig

    # both files are made only when their button is clicked (on_click="ignore": no rerun)
    d1.download_button("This figure as HTML (works offline, for slides)",
                       lambda: export().to_html(include_plotlyjs=True, full_html=True).encode("utf-8"),
                       file_name=f"nudge-playground-{toy.name}.html", mime="text/html",
                       on_click="ignore", key="pg_html")
    why_not = png_unavailable()
    if why_not:
        d2.caption(f"{why_not}; the HTML file and the figure's camera button work without it.")
    else:
        d2.download_button("This figure as PNG (1400 × 1000, for slides)", lambda: png_bytes(export()),
                           file_name=f"nudge-playground-{toy.name}.png", mime="image/png",
                           on_click="ignore", key="pg_png")
