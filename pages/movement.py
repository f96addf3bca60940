"""Movement: a 2-D map of the records before and after fine-tuning, in one aligned frame."""

from __future__ import annotations

import os
import time

import streamlit as st

from explorer_app import runs, session, sources
from explorer_app.figures import movement_figure
from explorer_app.widgets import ProgressSlot, page_errors
from nudge_core import registry
from nudge_core.projection import DEFAULT_MAX_POINTS, WARM_UP, positions, pull_counts
from nudge_core.registry import REFERENCE, label

session.boot()
with page_errors():  # the page's one error boundary: tracebacks go to the log
    st.title("5 · Movement")
    st.markdown(
        "Each dot is a record, placed so that records with similar vectors sit close together; "
        "colour says how many training queries pull it (grey: none, never moved). Red arrows go from "
        "where the records that moved most were to where NUDGE put them. The map is fitted on the "
        "original records only and the moved ones are placed with the *same* mapping, so unmoved "
        "records stay put and every arrow is drawn in one frame.")

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

    if projection == "umap" and WARM_UP["status"] in ("starting", "running"):
        with st.status("Compiling UMAP (first use in this server process, about a minute)…",
                       expanded=True) as status:
            bar = st.progress(0.0)
            started = WARM_UP.get("started") or time.time()
            while WARM_UP["status"] in ("starting", "running"):
                elapsed = time.time() - started
                bar.progress(min(0.99, elapsed / 120), text=f"{elapsed:.0f} s")
                time.sleep(1.0)
            status.update(label="UMAP is ready", state="complete", expanded=False)

    progress = ProgressSlot()
    try:
        with st.spinner(f"Computing the {projection.upper()} map…"):
            lay = runs.layout(result, method, projection, max_points, n_epochs, progress)
    except (ValueError, MemoryError, ImportError) as exc:
        progress.clear()
        st.error(f"The {projection.upper()} map could not be computed ({type(exc).__name__}: {exc}); "
                 "try the PCA map or fewer records.", icon=":material/error:")
        st.stop()
    progress.clear()

    res = result.methods[method]
    est = res.estimator
    counts = pull_counts(ds.queries(result.split.train), ds.n_records)
    queries = {k: v for k, v in lay.queries.items() if k in overlay}

    st.markdown("**Pick a query** to zoom onto it (black cross) with its relevant records (gold "
                "stars) and its top-10 before (blue rings) and after (red rings).")
    ids = ["(none)"] + list(result.test.ids)
    qid = st.selectbox("Test query", ids, format_func=lambda q: q if q == "(none)" else
                       f"{q}: {(ds.query_text or {}).get(q, '')[:90]}")
    highlight = None
    if qid != "(none)":
        j = result.test.ids.index(qid)
        before = result.methods[REFERENCE].test_top[j, :10]
        after = result.methods[method].test_top[j, :10]
        highlight = {"relevant records": positions(lay, result.test.answers[j], after=True),
                     "top-10 before": positions(lay, before),
                     "top-10 after": positions(lay, after, after=True),
                     "this query": lay.queries["test"][j:j + 1]}
    fig = movement_figure(lay, counts, arrows=arrows, shift=est.shift_, queries=queries,
                          highlight=highlight,
                          title=f"{label(method)} (γ = {res.gamma:.3g}): records before and after")
    st.plotly_chart(fig, width="stretch")
    sub = " (subsampled)" if lay.subsampled else ""
    st.caption(f"{len(lay.rows):,} records{sub}; {len(lay.moved_rows):,} moved; map computed in "
               f"{lay.seconds:.1f} s and cached. {lay.method.upper()} uses cosine similarity, so "
               "NUDGE-M's change of length is not drawn, only its change of direction.")
