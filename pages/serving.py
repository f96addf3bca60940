"""Serving: does the gain survive compression and approximate indexes?"""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from explorer_app import runs, session, sources
from explorer_app.widgets import ProgressSlot, page_errors
from nudge_core import registry
from nudge_core.exports import reproduce_command
from nudge_core.registry import colour, label
from nudge_core.serving import PRESETS, evaluate_serving, needs_both_ways

session.boot()
with page_errors():  # the page's one error boundary: tracebacks go to the log
    st.title("9 · Serving")
    st.markdown(
        "Every other page searches exactly in float32. Real systems truncate, quantize and use "
        "approximate indexes. Here each fitted method's records go through the index you would "
        "serve, and **gain kept** is (its metric − no fine-tuning's, both through that index) over "
        "the same difference in exact search. NUDGE-M's records are not unit length: a cosine index "
        "would re-normalise them, so it is shown both ways.")
    result = runs.require_result()
    large = sources.too_large(result.dataset)
    if large:
        st.info(f"{large}. Serving indexes are built in memory over the whole corpus, so this page "
                "does not build them here. On a machine with the memory, the command line does "
                "(each `--index` is one configuration):", icon=":material/info:")
        st.code(reproduce_command(replace(runs.cli_spec(result.spec), indexes=(
            PRESETS["int8"], PRESETS["binary + rescore"]))), language="bash")
        st.stop()
    chosen = st.multiselect("Index configurations", list(PRESETS), key="serving_presets",
                            default=["int8", "binary + rescore", "HNSW M=32"])
    custom = st.text_input("More, as on the command line (comma between specs is not allowed; "
                           "separate with ';')", key="serving_custom",
                           placeholder="truncate:dim=64; ivfpq:nlist=32,m=24,bits=8,nprobe=4")
    tune = st.checkbox("Fine-tune for the index you serve: also choose each NUDGE method's γ on "
                       "validation through each index", key="serving_tune",
                       help="One index build per candidate γ, per method and index: slower. The "
                            "table then shows the γ chosen through the index and its test NDCG@10 "
                            "next to the float32-chosen γ served through the same index.")
    specs = [PRESETS[c] for c in chosen] + [s.strip() for s in custom.split(";") if s.strip()]
    if not specs:
        st.info("Choose at least one configuration.")
        st.stop()
    progress = ProgressSlot("Serving: ")
    serving = runs.CURVES.get(("serving", runs.result_key(result), tuple(specs), tune),
                              lambda: evaluate_serving(result, specs, tune=tune, progress=progress))
    progress.clear()
    rows = []
    for text, entry in serving.items():
        for method, m in entry["methods"].items():
            tuned = m.get("tuned") or {}
            gamma = result.methods[method].gamma
            rows.append({"index": text, "method": label(method),
                         "γ (float32)": gamma,
                         "NDCG@10": m["metrics"]["ndcg@10"],
                         "gain kept": m.get("kept_share"),
                         "bytes / record": entry["bytes_per_record"],
                         "ms / query": entry.get("query_ms"),
                         "build s": entry.get("build_seconds"),
                         "re-normalised NDCG@10": (m.get("renormalized") or {}).get("metrics", {})
                         .get("ndcg@10") if isinstance(m.get("renormalized"), dict) else None,
                         **({"γ chosen through index": tuned.get("gamma_index"),
                             "NDCG@10, γ chosen through index": (tuned.get("metrics") or {})
                             .get("ndcg@10"),
                             "Δ vs float32 γ": tuned.get("delta"),
                             "p": (tuned.get("vs_float") or {}).get("ndcg@10", {}).get("p_value")}
                            if tune else {})})
    table = pd.DataFrame(rows)
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"gain kept": st.column_config.NumberColumn(format="percent")})
    fig = go.Figure()
    for method in result.methods:
        sel = table[table["method"] == label(method)]
        fig.add_bar(x=sel["index"], y=sel["NDCG@10"], name=label(method), marker_color=colour(method))
    fig.update_layout(barmode="group", height=420, yaxis_title="test NDCG@10",
                      title="Test NDCG@10 through each index")
    st.plotly_chart(fig, width="stretch")
    if tune:
        st.caption("γ chosen through the index: the γ whose validation objective (the method's own) "
                   "is best when searched through that index; the float32 γ is kept on ties. Δ: "
                   "test NDCG@10 at that γ minus at the float32 γ, both through the index; p: paired "
                   "randomization test over the test queries (as on the Results page).")
    ann = [t for t in serving if t.split(":")[0] in ("hnsw", "ivf", "ivfpq")]
    if ann:
        lat = go.Figure()
        for method in result.methods:
            lat.add_scatter(x=[serving[t].get("query_ms") for t in ann],
                            y=[serving[t]["methods"][method].get("overlap") for t in ann],
                            mode="markers+text", text=ann, name=label(method),
                            marker=dict(color=colour(method), size=10))
        lat.update_layout(height=380, xaxis_title="ms per query", yaxis_title="top-10 overlap with "
                          "exact search", title="Approximate indexes: recall vs latency")
        st.plotly_chart(lat, width="stretch")
    for method in result.methods:
        if registry.get(method).gamma is not None and needs_both_ways(result, method):
            st.warning(f"{label(method)}'s records are not unit length: an index built for cosine "
                       "re-normalises them and changes its ranking (the re-normalised column).",
                       icon=":material/warning:")
    st.download_button("Serving results (JSON)", json.dumps(serving, indent=1).encode("utf-8"),
                       file_name="serving.json", mime="application/json")
    st.download_button("Serving table (CSV)", table.to_csv(index=False).encode("utf-8"),
                       file_name="serving.csv", mime="text/csv")
    served = replace(runs.cli_spec(result.spec), indexes=tuple(specs),
                     tune_for_index=tune and bool(result.spec.tuned_names))
    st.caption("The same numbers from the command line (`--index SPEC` is repeatable; "
               "`--tune-for-index` adds the γ chosen through each index); they land under "
               "\"serving\" in the results JSON:")
    st.code(reproduce_command(served), language="bash")
