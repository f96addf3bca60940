"""NUDGE Explorer: `streamlit run app.py` opens on the bundled example.

Sets up the session and the navigation over the pages in ``pages/``; every page gathers input,
calls ``nudge_core`` and draws the engine's numbers with plotly. The code the pages share lives in
``explorer_app`` (beside the engine, ``nudge_core``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# numba reads its cache folder once, when first imported (by umap, on the Movement page): keep the
# compiled code in a per-user folder that outlives the server, so only the first start compiles.
_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
os.environ.setdefault("NUMBA_CACHE_DIR", str(_CACHE / "nudge-explorer" / "numba"))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import streamlit as st  # noqa: E402

from explorer_app import session  # noqa: E402
from nudge_core.projection import start_warm_up  # noqa: E402

st.set_page_config(page_title="NUDGE Explorer", page_icon="🧭", layout="wide")
session.init_session()
if not os.environ.get("NUDGE_NO_WARMUP"):
    start_warm_up()  # compile UMAP's numba code once per server process, in the background

page = st.navigation(session.navigation_pages())
with st.sidebar:
    st.markdown("### NUDGE Explorer")
    st.caption("Fine-tune record embeddings toward the queries they answer "
               "([arXiv 2409.02343](https://arxiv.org/abs/2409.02343)).")
summary = st.sidebar.empty()
session.sidebar_summary(summary)  # shown even if the page stops early
session.show_restored_notes()
page.run()  # each page's body runs under explorer_app.widgets.page_errors
session.sidebar_summary(summary)  # again, with what the page just changed (e.g. a new upload)
