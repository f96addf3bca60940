"""Export: fine-tuned embeddings, results JSON, per-query CSV, figures, reproducing command."""

from __future__ import annotations

import streamlit as st

from explorer_app import runs, session, sources
from explorer_app.figures import export_figures, figures_html
from explorer_app.movement_view import export_figures as movement_figures
from explorer_app.flags import last_sweep
from explorer_app.widgets import page_errors
from nudge_core.exports import (comparison_rows, embeddings_zip, per_query_csv, reproduce_command,
                                results_json, split_json)
from nudge_core.registry import REFERENCE, label

session.boot()
with page_errors():  # the page's one error boundary: tracebacks go to the log
    st.title("7 · Export")
    st.markdown(
        "Take the run home. The fine-tuned embeddings are what you would put in your vector index "
        "(NUDGE-M's are searched by inner product, the others by cosine). The results JSON is exactly "
        "what the command-line tool writes, and the command below reproduces this run.")

    result = runs.require_result()
    ds, src = sources.current_dataset()
    name = ds.name.replace(" ", "_")

    spec = runs.cli_spec(result.spec)
    command = reproduce_command(spec, out=f"{name}-result.json")
    st.subheader("Reproduce on the command line")
    st.code(command, language="bash", wrap_lines=True)
    if spec.split.mode == "file":
        st.caption(f"Save the split file below as `{spec.split.file}` next to where you run the command.")

    st.subheader("Downloads")
    st.caption("Files are built when you click.")
    c1, c2, c3 = st.columns(3)
    methods = [m for m in result.methods]
    # read here: the file is built later, when the button is clicked, on a thread of its own
    # where st.session_state is not this session's (Streamlit runs download callables outside
    # the script run)
    sweep, dkey = last_sweep(), sources.data_key()


    def all_figures() -> bytes:
        movement = movement_figures(result, dkey)  # PCA maps (+ UMAP if cached)
        figs = export_figures(result, sweep=sweep, movement=movement)
        return figures_html(figs, f"NUDGE Explorer: {ds.name}")


    with c1:
        chosen = st.multiselect("Embeddings of", methods, default=[m for m in methods if m != REFERENCE],
                                format_func=label)
        large = sources.too_large(ds)
        st.download_button("Fine-tuned embeddings (.zip of .npy + ids)",
                           lambda: embeddings_zip(result, chosen), file_name=f"{name}-embeddings.zip",
                           mime="application/zip", disabled=not chosen or bool(large))
        if large:
            st.caption(f"{large}: too large to download through the browser. The command below "
                       "with `--save-embeddings DIR` writes the fine-tuned records shard by shard.")
    with c2:
        st.download_button("Results JSON (CLI schema)", lambda: results_json(result),
                           file_name=f"{name}-result.json", mime="application/json")
        st.download_button("Per-query metrics, test (CSV)", lambda: per_query_csv(result),
                           file_name=f"{name}-per-query.csv", mime="text/csv")
        if result.ood is not None:
            st.download_button("Per-query metrics, OOD (CSV)", lambda: per_query_csv(result, ood=True),
                               file_name=f"{name}-per-query-ood.csv", mime="text/csv")
    with c3:
        st.download_button("Split used (JSON)", lambda: split_json(result),
                           file_name=spec.split.file if spec.split.mode == "file" else "splits.json",
                           mime="application/json")
        st.download_button("Figures (one HTML file, works offline)", all_figures,
                           file_name=f"{name}-figures.html", mime="text/html")
        st.caption("With the Sensitivity page's sweep." if sweep is not None else
                   "Open the Sensitivity page first to add its sweep to the figures.")

    with st.expander("Summary of this run"):
        st.dataframe([dict(r, method=label(r["method"])) for r in comparison_rows(result)],
                     hide_index=True, width="stretch")
