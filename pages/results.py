"""Results: before/after metrics with intervals, per-query wins and losses, top-10 before/after."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer_app import runs, session, sources
from explorer_app.figures import FAMILY_LABELS, delta_figure, metrics_by_k_figure, per_query_scatter
from explorer_app.flags import show_flags
from explorer_app.widgets import page_errors
from nudge_core.exports import comparison_rows, metrics_rows, topk_table, wins_losses
from nudge_core.metrics import FAMILIES, KS
from nudge_core.registry import REFERENCE, label

session.boot()
with page_errors():  # the page's one error boundary: tracebacks go to the log
    st.title("3 · Results")
    st.markdown(
        "How well each method retrieves for the **test** queries, which no method saw while fitting "
        "(NDCG@k rewards relevant records near the top; Recall@k is the share of a query's relevant "
        "records found in the top k, counted out of at most k, i.e. |top-k ∩ relevant| / "
        "min(|relevant|, k), so it can reach 1 even when a query has more than k relevant records; "
        "MRR@k is 1/rank of the first relevant one). The bars show the change against no "
        "fine-tuning with a 95% bootstrap interval: an interval clear of zero, with a small p, means "
        "the gain is unlikely to be luck.")

    result = runs.require_result()
    ds, src = sources.current_dataset()
    show_flags(result)  # warning signs first: a loss, a γ at the edge of its range, a gain in the noise

    st.subheader("Test metrics")
    table = metrics_rows(result)
    for row in table:
        row["method"] = label(row["method"])
    cuts = st.pills("Cut-offs k in the table", list(KS), default=[1, 10], selection_mode="multi",
                    key="results_cuts", help="every cut-off is in the chart below and the exports")
    shown = ["method", "gamma", "fit_seconds"] + [f"{f}@{k}" for f in FAMILIES for k in KS
                                                  if k in (cuts or [10])]
    HELP = {"ndcg": "NDCG@{k}: graded gain of the relevant records in the top {k}, discounted by "
                    "rank, divided by the best possible",
            "recall": "Recall@{k} = |top-{k} ∩ relevant| / min(|relevant|, {k}) (the NUDGE authors' "
                      "capped form; trec_eval and BEIR divide by |relevant|: choose 'Recall "
                      "(uncapped)' in the chart below)",
            "mrr": "MRR@{k}: 1 / rank of the first relevant record in the top {k}, else 0"}
    config = {"method": st.column_config.TextColumn(width=110, pinned=True),
              "gamma": st.column_config.NumberColumn("γ", format="%.4g", width=60),
              "fit_seconds": st.column_config.NumberColumn("fit s", format="%.2f", width=50,
                                                           help="seconds to fit")}
    config.update({f"{f}@{k}": st.column_config.NumberColumn(format="%.4f", width=80,
                                                             help=HELP[f].format(k=k))
                   for f in FAMILIES for k in KS})
    st.dataframe(table, hide_index=True, width="stretch", column_order=shown, column_config=config)

    c1, c2 = st.columns(2)
    fam = c1.radio("Metric family", ["ndcg", "recall", "recall_uncapped", "mrr"], horizontal=True,
                   format_func=FAMILY_LABELS.get,
                   help="Recall: out of min(|relevant|, k), as in the NUDGE paper; Recall "
                        "(uncapped): out of |relevant|, as trec_eval and BEIR report it")
    c1.plotly_chart(metrics_by_k_figure({m: r.metrics for m, r in result.methods.items()}, fam),
                    width="stretch")
    compared = {m: r.comparison for m, r in result.methods.items() if m != REFERENCE}
    metric = c2.selectbox("Compared metric", ["ndcg@10", "recall@10", "mrr@10"])
    if compared:
        c2.plotly_chart(delta_figure(compared, metric), width="stretch")
    with st.expander("Paired comparison table (bootstrap interval, randomization test)"):
        st.dataframe(comparison_rows(result), hide_index=True, width="stretch")

    methods = [m for m in result.methods if m != REFERENCE]
    if not methods:
        st.stop()
    st.subheader("Query by query")
    st.markdown("Each dot is one test query: its score before (x) and after (y). Dots above the "
                "diagonal improved (wins), below got worse (losses).")
    c1, c2 = st.columns([1, 3])
    method = c1.selectbox("Method", methods, index=len(methods) - 1, format_func=label)
    pq_metric = c1.selectbox("Per-query metric", ["ndcg@10", "recall@10", "mrr@10", "hit@1"])
    comp = result.methods[method].comparison.get(pq_metric)
    if comp:
        c1.metric("wins / losses / ties", f"{comp['wins']} / {comp['losses']} / {comp['ties']}")
    c2.plotly_chart(per_query_scatter(result.methods[REFERENCE].per_query[pq_metric],
                                      result.methods[method].per_query[pq_metric], result.test.ids,
                                      method, pq_metric), width="stretch")

    st.subheader("Biggest wins and losses")
    st.caption("Click a row (or pick a query below) to see its top-10 before and after; relevant "
               "records are marked.")
    wl = wins_losses(result, method, pq_metric, 10, ds.query_text)
    picked = None
    if wl:
        event = st.dataframe(wl, hide_index=True, width="stretch", on_select="rerun",
                             height=35 * (len(wl) + 1) + 3,
                             selection_mode="single-row", key=f"wl_{method}_{pq_metric}",
                             column_config={"query": st.column_config.TextColumn(width="large")})
        sel = getattr(getattr(event, "selection", None), "rows", None) or []
        if sel:
            picked = wl[sel[0]]["query_id"]
    else:
        st.info("No query changed.")
    ids = result.test.ids
    default = ids.index(picked) if picked in ids else (ids.index(wl[0]["query_id"]) if wl else 0)
    qid = st.selectbox("Query", ids, index=default,
                       format_func=lambda q: f"{q}: {(ds.query_text or {}).get(q, '')[:90]}")
    j = ids.index(qid)
    if ds.query_text and qid in ds.query_text:
        st.markdown(f"**Query {qid}:** {ds.query_text[qid]}")
    before = result.methods[REFERENCE].test_top[j, :10]  # the rankings the run already computed
    after = result.methods[method].test_top[j, :10]
    rows = topk_table(ds, result.test, j, before, after, sources.text_lookup(ds, src))
    has_text = any(r["before_text"] or r["after_text"] for r in rows)


    def side(prefix: str) -> pd.DataFrame:
        frame = pd.DataFrame({"rank": [r["rank"] for r in rows],
                              "record": [r[f"{prefix}_id"] for r in rows],
                              "relevant": [f"yes ({r[f'{prefix}_relevant']:g})" if r[f"{prefix}_relevant"]
                                           else "" for r in rows]})
        if has_text:
            frame["text"] = [r[f"{prefix}_text"] for r in rows]
        return frame.style.apply(lambda row: ["background-color: #d9f2d9" if row["relevant"] != ""
                                              else "" for _ in row], axis=1)


    # narrow rank / record / relevant columns so the text gets the width (side by side it was cut
    # to ~10 characters while the id column took the room); with texts the two tables are stacked
    # at full width, without texts they fit side by side
    widths = {"rank": st.column_config.NumberColumn("#", width=32),
              "record": st.column_config.TextColumn(width=190 if has_text else "medium"),
              "relevant": st.column_config.TextColumn(width=70),
              "text": st.column_config.TextColumn(width="large")}
    left, right = (st.container(), st.container()) if has_text else st.columns(2)
    left.markdown("**Top-10 before** (no fine-tuning)")
    left.dataframe(side("before"), hide_index=True, width="stretch", height=35 * 11 + 3,
                   column_config=widths)
    right.markdown(f"**Top-10 after** ({label(method)})")
    right.dataframe(side("after"), hide_index=True, width="stretch", height=35 * 11 + 3,
                    column_config=widths)
    lookup = sources.text_lookup(ds, src)
    if lookup is not None:
        with st.expander("Full text of the relevant record(s)"):
            for r in result.test.answers[j]:
                rid = ds.corpus_ids[int(r)]
                st.markdown(f"**{rid}**")
                st.text(lookup(rid) or "(no text)")
    st.caption(f"Green rows are judged relevant (the number is the grade); "
               f"{len(result.test.answers[j])} relevant record(s) for this query."
               + ("" if has_text else " This dataset has no record texts."))
