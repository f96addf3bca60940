"""NUDGE Explorer: `streamlit run app.py` opens on the bundled example.

Sets up the navigation over the pages in ``pages/``; every page gathers input, calls
``nudge_core`` and draws the engine's numbers with plotly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import streamlit as st  # noqa: E402

from nudge_core.projection import start_warm_up  # noqa: E402
from pages import common  # noqa: E402

st.set_page_config(page_title="NUDGE Explorer", page_icon=":material/explore:", layout="wide")
common.init_session()
if not os.environ.get("NUDGE_NO_WARMUP"):
    start_warm_up()  # compile UMAP's numba code once per server process, in the background

PAGES = [
    st.Page("pages/data.py", title="1 · Data", default=True, url_path="data"),
    st.Page("pages/finetune.py", title="2 · Fine-tune", url_path="finetune"),
    st.Page("pages/results.py", title="3 · Results", url_path="results"),
    st.Page("pages/ood.py", title="4 · Out-of-distribution", url_path="ood"),
    st.Page("pages/movement.py", title="5 · Movement", url_path="movement"),
    st.Page("pages/sensitivity.py", title="6 · Sensitivity", url_path="sensitivity"),
    st.Page("pages/export.py", title="7 · Export", url_path="export"),
]

page = st.navigation(PAGES)
with st.sidebar:
    st.markdown("### NUDGE Explorer")
    st.caption("Fine-tune record embeddings toward the queries they answer "
               "([arXiv 2409.02343](https://arxiv.org/abs/2409.02343)).")
summary = st.sidebar.empty()
common.sidebar_summary(summary)  # shown even if the page stops early
page.run()
common.sidebar_summary(summary)  # again, with what the page just changed (e.g. a new upload)
