"""Out-of-distribution: do the gains carry over to queries unlike the training ones?"""

from __future__ import annotations

import streamlit as st

from explorer_app import runs, session
from explorer_app.figures import ood_figure
from explorer_app.widgets import page_errors
from nudge_core.diagnostics import ood_findings
from nudge_core.registry import label
from nudge_core.exports import metrics_rows, ood_rows

session.boot()
with page_errors():  # the page's one error boundary: tracebacks go to the log
    st.title("4 · Out-of-distribution")
    st.markdown(
        "Fine-tuning helps queries like the training ones; does it help different ones? Blue bars "
        "are the gain on in-distribution test queries and red bars on out-of-distribution (OOD) ones, "
        "with 95% bootstrap intervals as whiskers. A method that lengthens the moved records can "
        "crowd out better answers for unrelated queries; one that keeps records unit length changes "
        "them less. Which holds up better depends on the data: the sentences under the chart are "
        "computed from this run's numbers.")

    if st.session_state.split_cfg["ood"] == "none":
        st.info("No OOD check is chosen. On the **Data** page, pick the k-means split, the dataset's "
                "OOD query set (when it has one) or upload your own.")
        st.page_link("pages/data.py", label="Go to Data", icon=":material/arrow_back:")
        st.stop()
    result = runs.require_result()
    if result.ood is None:
        st.warning("The chosen OOD query set is not loaded yet (upload it on the **Data** page).")
        st.stop()

    source = "k-means cluster 1 of the training queries" if result.ood_source == "kmeans" \
        else f"{result.ood_source}"
    st.caption(f"{len(result.test)} in-distribution test queries; {len(result.ood)} OOD queries "
               f"({source}).")
    metric = st.selectbox("Metric", ["ndcg@10", "recall@10", "mrr@10"])
    rows = ood_rows(result, metric)
    if rows:
        st.plotly_chart(ood_figure(rows, metric), width="stretch")
        st.markdown("\n".join(f"- {sentence}" for sentence in ood_findings(rows, metric)))
        table = [dict(r, method=label(r["method"])) for r in rows]
        st.dataframe(table, hide_index=True, width="stretch")
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**In-distribution test metrics**")
        st.dataframe([{"method": label(r["method"]), **{k: r[k] for k in ("ndcg@10", "recall@10", "mrr@10")}}
                      for r in metrics_rows(result)], hide_index=True, width="stretch")
    with c2:
        st.markdown("**OOD metrics**")
        st.dataframe([{"method": label(r["method"]), **{k: r[k] for k in ("ndcg@10", "recall@10", "mrr@10")}}
                      for r in metrics_rows(result, ood=True)], hide_index=True, width="stretch")
