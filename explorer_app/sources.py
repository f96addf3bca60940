"""Where this session's data comes from: the bundled example, a folder on the server, an upload.

The chosen source is a dict in ``st.session_state.source`` (``kind``, ``path``, ``model``, ``key``,
``label``, ``cli_arg``); uploads are written into a private temporary folder per browser session,
deleted with the session. Datasets read from the server are cached in ``st.cache_resource`` keyed
by a hash of their files, so two browsers share an entry only for byte-identical data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path

import streamlit as st

from nudge_core import DataError, load_dataset, load_query_set
from nudge_core.data import available_models
from nudge_core.files import dataset_root

from .uploads import (content_hash, folder_hash, load_uploaded_dataset, load_uploaded_queries,
                      tidy_message)
from .widgets import show_error

ROOT = Path(__file__).resolve().parents[1]
#: The bundled example (the one constant to change to bundle another dataset).
BUNDLED_EXAMPLE = ROOT / "sample_data" / "stdlib"
#: Used only while the bundled example has not been built (development checkouts).
DEV_FALLBACK = ROOT.parent / "shared" / "datasets" / "scifact"


def example_path() -> Path:
    """The example the app opens on: $NUDGE_EXAMPLE, else the bundled one, else the dev fallback."""
    env = os.environ.get("NUDGE_EXAMPLE")
    if env:
        return Path(env)
    return BUNDLED_EXAMPLE if BUNDLED_EXAMPLE.is_dir() or not DEV_FALLBACK.is_dir() else DEV_FALLBACK


def cli_path(path: Path) -> str:
    """``path`` as the command line would name it: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def upload_limit_mb() -> int:
    return int(st.get_option("server.maxUploadSize"))


def bundled_source() -> dict:
    """The source dict of the example the app opens on."""
    path = example_path()
    return {"kind": "bundled", "path": str(path), "model": None,
            "label": f"bundled example ({path.name})", "cli_arg": cli_path(path)}


def _upload_source(key: str, name: str) -> dict:
    return {"kind": "upload", "path": None, "model": None, "key": key,
            "label": f"upload: {name}", "cli_arg": f"<your {name} folder>"}


# ---------------------------------------------------------------- the session's upload folder
class _SessionFolder:
    """A session's private upload folder, deleted when the session's state is dropped.

    Streamlit discards a session's ``session_state`` some time after its browser disconnects; the
    ``weakref.finalize`` then removes the folder (and at the latest when the server exits).
    """

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="nudge-session-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)


def session_dir() -> Path:
    """This browser session's private temporary folder for uploads."""
    ss = st.session_state
    holder = ss.get("tmp_holder")
    if holder is None or not holder.path.is_dir():
        holder = ss.tmp_holder = _SessionFolder()
    return holder.path


def discard_upload_folder(folder: str | Path | None) -> None:
    """Delete one upload's files (a failed upload, or one a newer upload replaced)."""
    if folder and Path(folder).parent == session_dir():
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- choosing the dataset
@st.cache_resource(max_entries=4, show_spinner="Loading the dataset…")
def load_path(key: str, path: str, model: str | None):
    return load_dataset(path, model)


def use_bundled() -> None:
    """Make the bundled example this session's dataset."""
    st.session_state.source = bundled_source()


def use_server_folder(path: str, model: str | None) -> None:
    """Make a folder (or .zip) on the server this session's dataset; on failure the message goes
    to ``load_error`` and the previous dataset stays in use."""
    ss = st.session_state
    try:
        if not Path(path).exists():
            raise DataError("no such file or folder", path)
        load_path(folder_hash(path), path, model)
        ss.source = {"kind": "path", "path": path, "model": model, "key": folder_hash(path),
                     "label": f"{Path(path).name} (server folder)", "cli_arg": path}
        ss.load_error = None
    except DataError as exc:
        ss.load_error = str(exc)


def _items(files) -> list[tuple[str, bytes]]:
    return [(f.name, f.getvalue()) for f in files]


def use_dataset_upload(files) -> None:
    """Make uploaded files (Streamlit ``UploadedFile``s) this session's dataset.

    A failed upload's message goes to ``load_error`` and its files are deleted; the previous dataset
    stays in use. A replaced upload's files are deleted too."""
    ss = st.session_state
    items = _items(files)
    key = content_hash(items)
    if not ss.upload or ss.upload["key"] != key:
        folder = session_dir() / key[:16]
        try:
            ds = load_uploaded_dataset(items, folder)
            if ss.upload:
                discard_upload_folder(ss.upload["folder"])
            ss.upload = {"key": key, "dataset": ds, "name": ds.name, "folder": str(folder)}
            ss.source = _upload_source(key, ds.name)
            ss.load_error = None
        except DataError as exc:
            ss.load_error = tidy_message(str(exc), folder)
            discard_upload_folder(folder)
    elif ss.source["kind"] != "upload":
        ss.source = _upload_source(key, ss.upload["name"])


def path_key(path: str) -> str:
    return folder_hash(path)


def current_dataset():
    """(Dataset, source dict) for this session, or (None, source) with the error shown."""
    src = st.session_state.source
    if src["kind"] == "upload":
        up = st.session_state.upload
        return (up["dataset"], src) if up else (None, src)
    try:
        key = src.get("key") or path_key(src["path"])
        src["key"] = key
        return load_path(key, src["path"], src.get("model")), src
    except DataError as exc:
        show_error(exc)
        return None, src


def data_key() -> str:
    """The content of this session's dataset: an upload's hash, or a server folder's hash with
    the embedding set chosen in it."""
    src = st.session_state.source
    if src["kind"] == "upload":
        up = st.session_state.upload
        return up["key"] if up else "none"
    return (src.get("key") or path_key(src["path"])) + ":" + (src.get("model") or "")


def models_at(path: str) -> list[str]:
    p = Path(path)
    return available_models(dataset_root(p)) if p.is_dir() else []


def text_lookup(ds, src):
    """record id -> text (or a note when the text is unavailable), or None without texts."""
    if ds.corpus_text:
        return ds.corpus_text.get
    if src["kind"] == "bundled" and Path(src["path"]).resolve() == BUNDLED_EXAMPLE.resolve():
        from nudge_core.examples.stdlib_docs import record_text

        def lookup(rid: str) -> str:
            return record_text(rid) or "(the running Python lacks this record)"
        return lookup
    return None


# ---------------------------------------------------------------- out-of-distribution queries
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
    """Make uploaded files this session's OOD query set for ``ds``; the error message, or None."""
    ss = st.session_state
    items = _items(files)
    key = content_hash(items)
    current = ss.ood_upload
    if current and current["key"] == key and current["data_key"] == data_key():
        return None
    folder = session_dir() / ("ood-" + key[:16])
    discard_upload_folder(folder)  # never write over files a result may map
    if current and current.get("folder") != str(folder):
        discard_upload_folder(current.get("folder"))  # replaced either way
    try:
        extra = load_uploaded_queries(items, folder, ds)
    except DataError as exc:
        ss.ood_upload = None
        message = tidy_message(str(exc), folder)
        discard_upload_folder(folder)
        return message
    ss.ood_upload = {"key": key, "queries": extra, "data_key": data_key(), "folder": str(folder)}
    return None


UPLOADED_OOD_ARG = "<your OOD query-set folder>"


def ood_arg() -> str | None:
    """The chosen OOD option as the command line's ``--ood`` argument (None: no OOD check)."""
    choice = st.session_state.split_cfg["ood"]
    if choice == "kmeans":
        return "kmeans"
    if choice == "upload":
        up = st.session_state.ood_upload
        return UPLOADED_OOD_ARG if up and up.get("data_key") == data_key() else None
    folder = bundled_ood_dir(st.session_state.source) if choice == "bundled" else None
    return cli_path(folder) if folder is not None else None


def ood_key() -> str:
    """The content of the chosen OOD query set (an upload's hash, a folder's hash), for cache keys."""
    choice = st.session_state.split_cfg["ood"]
    if choice == "upload":
        up = st.session_state.ood_upload
        return up["key"] if up and up.get("data_key") == data_key() else "no-ood-upload"
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
        up = st.session_state.ood_upload
        if up and up.get("data_key") == data_key():
            return up["queries"].queries, UPLOADED_OOD_ARG, up["queries"].texts
        return None, None, None
    return None, None, None
