"""This session's out-of-distribution query set: the dataset's own ``ood/`` folder, or an upload.

An uploaded set is loaded into memory (its files are deleted at once) and remembered with the
content hash of its files and of the dataset it was resolved against; :func:`ood_key` hands that
hash to every cache key of a run that uses it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import streamlit as st

from nudge_core import DataError, load_query_set
from nudge_core.files import dataset_root

from . import folders
from .sources import cli_path, data_key, session_dir, upload_limits
from .uploads import content_hash, load_uploaded_queries
from .widgets import show_error

UPLOADED_OOD_ARG = "<your OOD query-set folder>"


def bundled_ood_dir(src: dict) -> Path | None:
    """The dataset's own OOD query set (``<dataset>/ood/``) when it has one."""
    if src["kind"] == "upload" or not src.get("path"):
        return None
    p = Path(src["path"])
    if p.is_dir():
        cand = dataset_root(p) / "ood"
        if cand.is_dir():
            return cand
    return None


@st.cache_resource(max_entries=4, show_spinner="Loading the OOD query set…")
def _load_ood_dir(key: str, path: str, _ds):
    return load_query_set(path, _ds)


def use_ood_upload(files, ds) -> str | None:
    """Make uploaded files this session's OOD query set for ``ds``, replacing any previous one;
    the error message, or None."""
    ss = st.session_state
    items = [(f.name, f.getvalue()) for f in files]
    key = content_hash(items)
    current = ss.ood_upload
    if current and current["key"] == key and current["data_key"] == data_key():
        return None
    folder = Path(tempfile.mkdtemp(prefix="ood-", dir=session_dir()))
    try:
        extra = load_uploaded_queries(items, folder, ds, limits=upload_limits())
    except DataError as exc:
        ss.ood_upload = None
        return folders.scrub(str(exc))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ss.ood_upload = {"key": key, "queries": extra, "data_key": data_key(),
                     "files": [n for n, _ in items]}
    return None


def clear_ood_upload() -> None:
    st.session_state.ood_upload = None


def current_upload() -> dict | None:
    """The uploaded OOD set, if it was resolved against this session's current dataset."""
    up = st.session_state.ood_upload
    return up if up and up.get("data_key") == data_key() else None


def ood_arg() -> str | None:
    """The chosen OOD option as the command line's ``--ood`` argument (None: no OOD check)."""
    choice = st.session_state.split_cfg["ood"]
    if choice == "kmeans":
        return "kmeans"
    if choice == "upload":
        return UPLOADED_OOD_ARG if current_upload() else None
    folder = bundled_ood_dir(st.session_state.source) if choice == "bundled" else None
    return cli_path(folder) if folder is not None else None


def ood_key() -> str:
    """The content of the chosen OOD query set (an upload's hash, a folder's hash), for cache keys."""
    choice = st.session_state.split_cfg["ood"]
    if choice == "upload":
        up = current_upload()
        return "upload:" + up["key"] if up else "no-ood-upload"
    return choice  # the dataset's own ood/ folder is inside the dataset, which data_key covers


def current_ood(ds):
    """(QuerySet | None, source string | None, texts) for the chosen OOD option."""
    cfg = st.session_state.split_cfg
    src = st.session_state.source
    if cfg["ood"] == "bundled":
        folder = bundled_ood_dir(src)
        if folder is None:
            return None, None, None
        try:
            extra = _load_ood_dir(data_key() + ":ood", str(folder), ds)
        except DataError as exc:
            show_error(exc)
            return None, None, None
        return extra.queries, cli_path(folder), extra.texts
    if cfg["ood"] == "upload":
        up = current_upload()
        if up:
            return up["queries"].queries, UPLOADED_OOD_ARG, up["queries"].texts
    return None, None, None
