"""One browser session: its defaults, the app's navigation, the sidebar summary.

``app.py`` calls :func:`init_session` and builds its navigation from :data:`PAGES`; every page
script starts with :func:`boot`, which makes sure ``app.py`` set the session up.
"""

from __future__ import annotations

import streamlit as st

from nudge_core.registry import label

from . import folders, permalink
from .ood_sets import bundled_ood_dir
from .runs import default_settings
from .sources import bundled_source, upload_limit_mb

DEFAULT_SPLIT = {"mode": "paper", "seed": 0, "val_frac": 0.1, "test_frac": 0.2, "ood": "none",
                 "split_obj": None, "split_name": None}

#: The app's pages in order: (script, title, URL path); the first is the default.
PAGES = (("pages/data.py", "1 · Data", "data"),
         ("pages/finetune.py", "2 · Fine-tune", "finetune"),
         ("pages/results.py", "3 · Results", "results"),
         ("pages/ood.py", "4 · Out-of-distribution", "ood"),
         ("pages/movement.py", "5 · Movement", "movement"),
         ("pages/sensitivity.py", "6 · Sensitivity", "sensitivity"),
         ("pages/export.py", "7 · Export", "export"),
         # last: it needs no dataset and leaves the workflow pages' numbers as they were
         ("pages/playground.py", "8 · Playground", "playground"),
         ("pages/serving.py", "9 · Serving", "serving"),
         ("pages/compare.py", "10 · Compare runs", "compare"))


def navigation_pages() -> list[st.Page]:
    """:data:`PAGES` as ``st.Page`` objects for ``st.navigation``."""
    return [st.Page(script, title=title, url_path=url, default=i == 0)
            for i, (script, title, url) in enumerate(PAGES)]


def init_session() -> None:
    """This session's defaults (idempotent: values already set are kept)."""
    ss = st.session_state
    fresh = "source" not in ss
    if fresh:
        folders.process_root()  # the process's upload root; the first one clears dead servers' roots
        ss.source = bundled_source()
    # the bundled example ships an OOD query set: check it from the first visit on
    ss.setdefault("split_cfg", dict(DEFAULT_SPLIT, ood="bundled" if ss.source["kind"] == "bundled"
                                    and bundled_ood_dir(ss.source) is not None else "none"))
    ss.setdefault("settings_cfg", default_settings())
    ss.setdefault("upload", None)  # {"key", "content", "dataset", "model", "models", "files", ...}
    ss.setdefault("ood_upload", None)  # {"key", "queries", "data_key", "files"}
    ss.setdefault("load_error", None)
    if fresh and st.query_params.get(permalink.PARAM):  # a reload: the choices in the address
        ss.restored_notes = permalink.restore(ss, st.query_params[permalink.PARAM])


def show_restored_notes() -> None:
    """What a reload could not bring back (:func:`permalink.restore`), once, above the page."""
    for note in st.session_state.pop("restored_notes", None) or ():
        st.warning(note, icon=":material/history:")


def boot() -> None:
    """Make sure ``app.py`` (navigation, session set-up) ran for this session; first on a page.

    Streamlit keeps a legacy mode for apps with a ``pages/`` folder: until some session of the
    server process has called ``st.navigation``, a deep link such as ``/results`` into a freshly
    started server runs that page file alone, under navigation built from the file names. Declaring
    the app's own navigation (public ``st.navigation``) ends that mode for the process, and the
    rerun then runs ``app.py``, which routes back to the same page. (AppTest runs every page in
    that mode, which is why each page's body, not ``app.py``, runs under ``page_errors``.)"""
    if "source" in st.session_state:
        return
    st.navigation(navigation_pages(), position="hidden")
    st.rerun()


def sidebar_summary(slot=None) -> None:
    """Data, split and methods in the sidebar; into ``slot`` (an ``st.sidebar.empty()``) if given,
    so that a second call after the page has run replaces the first with what the page changed."""
    ss = st.session_state
    with slot.container() if slot is not None else st.sidebar:
        st.caption(f"**Data:** {ss.source['label']}")
        cfg = ss.split_cfg
        how = {"paper": f"paper split, seed {cfg['seed']}", "file": "uploaded split file",
               "qrels": "dataset's qrels files"}[cfg["mode"]]
        ood = {"none": "", "kmeans": " · k-means OOD", "bundled": " · dataset's OOD set",
               "upload": " · uploaded OOD set"}[cfg["ood"]]
        st.caption(f"**Split:** {how}{ood}")
        st.caption(f"**Methods:** {', '.join(label(m) for m in ss.settings_cfg['methods'])}")
        st.caption(f"Uploads up to {upload_limit_mb()} MB per file.")
