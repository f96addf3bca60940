"""Movement: a 2-D map of the records before and after fine-tuning, in one aligned frame, how far
that map can be trusted, and one record's move seen up close."""

from __future__ import annotations

import os
import time

import numpy as np
import streamlit as st

from explorer_app import movement_view as mv
from explorer_app import runs, session, sources
from explorer_app.figures import figures_html
from explorer_app.widgets import page_errors
from nudge_core import registry
from nudge_core.faithfulness import local_view
from nudge_core.projection import DEFAULT_MAX_POINTS, WARM_UP, positions, pull_counts, why_moved
from nudge_core.registry import REFERENCE, label

session.boot()
with page_errors():  # the page's one error boundary: tracebacks go to the log
    st.title("5 · Movement")
    st.markdown(
        "Each dot is a record, placed so that records with similar directions sit close together; "
        "colour says how many training queries pull it (grey: none, never moved). Red arrows go from "
        "where the records that moved most were to where NUDGE put them. The map is fitted on the "
        "original records only and the moved ones are placed with the *same* mapping, so unmoved "
        "records stay put and every arrow is drawn in one frame. A 2-D map distorts: the chart "
        "below the map says how much, and **One record up close** shows a move with honest "
        "distances.")

    result = runs.require_result()
    ds, src = sources.current_dataset()
    nudges = [m for m in reversed(result.methods) if registry.get(m).gamma is not None]
    if not nudges:
        st.info("Fit " + " or ".join(label(m) for m in registry.gamma_methods())
                + " on the **Fine-tune** page to see how records move.")
        st.stop()

    c1, c2, c3, c4 = st.columns(4)
    method = c1.selectbox("Method", nudges, format_func=label)
    projections = ["umap", "pca"]
    default_proj = os.environ.get("NUDGE_PROJECTION", "umap")
    projection = c2.radio("Map", projections, index=projections.index(default_proj)
                          if default_proj in projections else 0, horizontal=True,
                          format_func={"umap": "UMAP", "pca": "PCA (instant)"}.get)
    arrows = c3.slider("Arrows (records that moved most)", 0, 300, 60, 10)
    max_points = DEFAULT_MAX_POINTS
    if ds.n_records > DEFAULT_MAX_POINTS:
        max_points = c4.number_input("Records on the map (random subsample; moved records always "
                                     "shown)", 1000, ds.n_records, DEFAULT_MAX_POINTS, 5000)
    else:
        c4.caption(f"All {ds.n_records:,} records shown (a subsample control appears above "
                   f"{DEFAULT_MAX_POINTS:,}).")
    overlay = st.multiselect("Overlay queries", ["train", "test"], default=["test"])
    epochs = os.environ.get("NUDGE_UMAP_EPOCHS")
    n_epochs = int(epochs) if epochs else None
    dkey = sources.data_key()

    def failed(proj: str, exc: BaseException) -> None:
        st.error(f"The {proj.upper()} map could not be computed ({type(exc).__name__}: {exc}); "
                 "try the PCA map or fewer records.", icon=":material/error:")

    jobs = {"pca": mv.layout_for(result, method, "pca", dkey, max_points=max_points)}
    if jobs["pca"].future.exception() is not None:
        failed("pca", jobs["pca"].future.exception())
        st.stop()
    shown = "pca"
    if projection == "umap":
        umap_job = mv.layout_for(result, method, "umap", dkey, max_points=max_points,
                                 n_epochs=n_epochs, background=True)
        if not umap_job.done():
            @st.fragment(run_every=1.0)
            def wait_for_umap() -> None:
                if umap_job.done():
                    st.rerun()  # the whole page, now with the UMAP map
                fraction, message = umap_job.progress
                if WARM_UP["status"] in ("starting", "running"):
                    message = "UMAP is compiling (first use since the server started)"
                st.progress(min(0.99, fraction), text=f"UMAP map: {message} "
                            f"({time.time() - umap_job.started:.0f} s). The PCA map is shown "
                            "until it is ready; it will swap in by itself.")
            wait_for_umap()
        elif umap_job.future.exception() is not None:
            failed("umap", umap_job.future.exception())
        else:
            jobs["umap"] = umap_job
            shown = "umap"
    lay = jobs[shown].future.result()

    res = result.methods[method]
    est = res.estimator
    train = ds.queries(result.split.train)
    counts = pull_counts(train, ds.n_records)
    labels = mv.RecordLabels(ds)
    after_norms = np.linalg.norm(res.embeddings[est.moved_], axis=1)
    queries = {k: v for k, v in lay.queries.items() if k in overlay}

    st.markdown("**Pick a query** to zoom onto it (black cross, centred; its relevant records in view) with "
                "its relevant records (gold stars) and its top-10 before (blue rings) and after "
                "(red rings).")
    ids = ["(none)"] + list(result.test.ids)
    qid = st.selectbox("Test query", ids, format_func=lambda q: q if q == "(none)" else
                       mv.query_label(ds, q, 90))
    highlight = None
    if qid != "(none)":
        j = result.test.ids.index(qid)
        before = result.methods[REFERENCE].test_top[j, :10]
        after = result.methods[method].test_top[j, :10]
        highlight = {"relevant records": positions(lay, result.test.answers[j], after=True),
                     "top-10 before": positions(lay, before),
                     "top-10 after": positions(lay, after, after=True),
                     "this query": lay.queries["test"][j:j + 1]}
    title = f"{label(method)} (γ = {res.gamma:.3g}): records before and after, {shown.upper()}"
    fig = mv.movement_figure(lay, counts, record_labels=labels, arrows=arrows, shift=est.shift_,
                             after_norms=after_norms, queries=queries, highlight=highlight,
                             title=title)
    st.plotly_chart(fig, width="stretch")
    sub = " (subsampled)" if lay.subsampled else ""
    length = (f" Moved records are coloured by their length after the move "
              f"({after_norms.min():.3f}–{after_norms.max():.3f}): {label(method)} changes lengths, "
              "which no map position can show."
              if len(after_norms) and not np.allclose(after_norms, 1.0, atol=1e-4) else
              f" {label(method)} keeps every record at length 1, so the map misses nothing of "
              "its length.")
    st.caption(f"{len(lay.rows):,} records{sub}; {len(lay.moved_rows):,} moved; map computed in "
               f"{lay.seconds:.1f} s and cached. Both maps are fitted on unit-length vectors "
               "(each record divided by its length), so positions show direction only." + length)
    if highlight is not None:
        rel = set(result.test.answers[j].tolist())
        rows = [{"rank": i + 1,
                 "before": labels[b] if b >= 0 else "", "relevant (before)": "✓" if b in rel else "",
                 "after": labels[a] if a >= 0 else "", "relevant (after)": "✓" if a in rel else ""}
                for i, (b, a) in enumerate(zip(before.tolist(), after.tolist()))]
        st.dataframe(rows, hide_index=True, width="stretch", column_config={
            "rank": st.column_config.NumberColumn("rank", width=50),
            "before": st.column_config.TextColumn("top-10 before", width="large"),
            "relevant (before)": st.column_config.TextColumn("rel.", width=40),
            "after": st.column_config.TextColumn(f"top-10 after ({label(method)})", width="large"),
            "relevant (after)": st.column_config.TextColumn("rel.", width=40)})

    def faithfulness_and_one_record() -> None:
        st.subheader("How faithful is the map?")
        faith = {p: mv.faithfulness_of(j, result, method) for p, j in jobs.items()}
        ffig = mv.faithfulness_figure(faith)
        st.plotly_chart(ffig, width="stretch")
        said = "; ".join(f"on the {p.upper()} map a moved record keeps {f.mean_before:.0%} of its "
                         f"{f.k} nearest neighbours before the move and {f.mean_after:.0%} after"
                         for p, f in faith.items())
        chance = max(f.chance for f in faith.values())
        st.markdown(
            f"For each moved record ({len(next(iter(faith.values())).rows):,} measured), the share of "
            f"its {faith['pca'].k} nearest neighbours in the embedding space (by cosine similarity) "
            f"that are also its nearest on the map: {said} (a random map keeps about {chance:.1%}). "
            "The lower it is, the less the records around an arrow are the record's real neighbours: "
            "read arrows as rough directions, and judge distances in the local view below."
            + ("" if "umap" in faith else " The UMAP figure is added once the UMAP map is ready."))

        st.subheader("One record up close: why it moved")
        moved = est.moved_
        order = np.lexsort((-counts[moved], -np.round(est.shift_, 6)))[:500]
        row = st.selectbox("Moved record (most moved first)", moved[order].tolist(),
                           format_func=lambda r: labels[int(r)])
        before_vecs = result.methods[REFERENCE].embeddings
        why = why_moved(int(row), before_vecs, res.embeddings, train)
        m1, m2, m3 = st.columns(3)
        m1.metric("Moved by ‖Δ‖", f"{why.shift:.4f}")
        m2.metric("Length before → after", f"{why.norm_before:.3f} → {why.norm_after:.3f}")
        m3.metric("Training queries pulling it", f"{int(counts[row])}")
        st.dataframe([{"query": mv.query_label(ds, q, 80), "cos before": float(cb),
                       "cos after": float(ca), "rank before": int(rb), "rank after": int(ra)}
                      for q, cb, ca, rb, ra in zip(why.query_ids, why.cos_before, why.cos_after,
                                                   why.rank_before, why.rank_after)],
                     hide_index=True, width="stretch", column_config={
                         "query": st.column_config.TextColumn("pulling training query", width="large"),
                         "cos before": st.column_config.NumberColumn(format="%.3f", width=90),
                         "cos after": st.column_config.NumberColumn(format="%.3f", width=90),
                         "rank before": st.column_config.NumberColumn(width=90),
                         "rank after": st.column_config.NumberColumn(width=90)})
        st.caption("Cosine similarity of the record to each training query that pulls it, before and "
                   "after, and the record's rank for that query among all records as the search "
                   f"scores them (no fine-tuning vs {label(method)}; 1 = first).")
        lv = local_view(int(row), before_vecs, res.embeddings, train)
        lfig = mv.local_view_figure(
            lv, record=labels[int(row)].split(":")[0],
            query_labels=[mv.query_label(ds, train.ids[p], 60) for p in lv.query_pos],
            before_labels=[labels[int(r)] for r in lv.before_rows],
            after_labels=[labels[int(r)] for r in lv.after_rows])
        st.plotly_chart(lfig, width="stretch")
        st.caption(f"A PCA fitted on these {2 + len(lv.query_pos) + 2 * len(lv.before_rows)} vectors "
                   "only (the record before and after, its pulling queries, its 10 nearest records "
                   "by cosine similarity before and after), lengths included: a linear map, so the "
                   f"arrow is the real move seen from the plane that keeps {lv.explained:.0%} of "
                   "this neighbourhood's variance.")

        figs.update({"Map faithfulness": ffig, f"Record {labels[int(row)]}": lfig})

    figs = {title: fig}
    if not len(est.moved_):
        st.info(f"{label(method)} moved no record at γ = {res.gamma:.3g}: there is no move to "
                "measure or to look at up close.")
    else:
        faithfulness_and_one_record()
    st.download_button("Movement figures (one HTML file, works offline)",
                       lambda: figures_html(figs, f"NUDGE Explorer movement: {ds.name}"),
                       file_name=f"{ds.name}-movement.html", mime="text/html")
