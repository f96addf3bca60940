"""Where this session's data comes from: the bundled example, a dataset the server offers, an upload.

The chosen source is a dict in ``st.session_state.source`` (``kind``, ``path``, ``model``, ``key``,
``label``, ``cli_arg``). Server datasets are only those :mod:`folders` lists under the operator's
allowed roots, chosen by name, never by a typed path. Uploads are unpacked in the session's private
folder (:mod:`folders`), loaded into memory and their files deleted; a zip with several embedding
sets is kept there so that another set can be chosen. Datasets read from the server are cached in
``st.cache_resource`` keyed by a hash of their files, so two browsers share an entry only for
byte-identical data.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import streamlit as st

from nudge_core import DataError, load_dataset
from nudge_core.shards import OUT_OF_CORE_MIB, corpus_mib, is_out_of_core, route_out_of_core

from . import folders
from .uploads import (UploadLimits, check_model_name, content_hash, folder_hash,
                      guess_model_name, load_uploaded_dataset, load_uploaded_zip)
from .widgets import show_error

ROOT = folders.REPO
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


def upload_limits() -> UploadLimits:
    """What an upload may expand to, from the app's upload limit (``server.maxUploadSize``)."""
    return UploadLimits.from_upload_mb(upload_limit_mb())


def bundled_source() -> dict:
    """The source dict of the example the app opens on."""
    path = example_path()
    return {"kind": "bundled", "path": str(path), "model": None,
            "label": f"bundled example ({path.name})", "cli_arg": cli_path(path)}


def session_dir() -> Path:
    """This browser session's private folder for uploads (see :class:`folders.SessionFolder`)."""
    ss = st.session_state
    holder = ss.get("tmp_holder")
    if holder is None or not holder.path.is_dir():
        holder = ss.tmp_holder = folders.SessionFolder()
    return holder.path


def _discard(folder: str | Path | None) -> None:
    """Delete one upload's files (a failed upload, or one a newer upload replaced)."""
    if folder and Path(folder).parent == session_dir():
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- datasets on the server
#: The environment variable setting the app's in-memory limit in MiB (see :func:`in_memory_limit`).
IN_MEMORY_ENV = "NUDGE_IN_MEMORY_MB"


def in_memory_limit() -> float:
    """MiB of float32 records a server dataset's one-file corpus may have and still be held in
    memory: $NUDGE_IN_MEMORY_MB, else the engine's :data:`~nudge_core.shards.OUT_OF_CORE_MIB`
    (what the command line uses). Larger ones, and every sharded corpus, are searched out of core."""
    try:
        return max(0.0, float(os.environ[IN_MEMORY_ENV]))
    except (KeyError, ValueError):
        return float(OUT_OF_CORE_MIB)


def too_large(ds) -> str | None:
    """A sentence for the pages whose work needs the whole corpus in memory (serving indexes, the
    embeddings download) when ``ds``'s corpus is out of core and over :func:`in_memory_limit`;
    None when it may be read whole."""
    corpus, limit = ds.corpus_emb, in_memory_limit()
    if not is_out_of_core(corpus) or corpus_mib(corpus) < limit:
        return None
    return (f"This corpus ({ds.n_records:,} records, {corpus_mib(corpus):,.0f} MiB as float32) is "
            f"over this server's in-memory limit of {limit:,.0f} MiB (${IN_MEMORY_ENV}) and is "
            "searched out of core, shard by shard")


@st.cache_resource(max_entries=4, show_spinner="Loading the dataset…")
def load_path(key: str, path: str, model: str | None, limit_mib: float):
    """The dataset at ``path`` (``key``: its content hash); a one-file corpus of ``limit_mib`` MiB
    or more opened out of core, with a note saying so (:func:`~nudge_core.shards.route_out_of_core`)."""
    ds = load_dataset(path, model)
    note = route_out_of_core(ds, limit_mib)
    if note:
        ds.notes.append(note)
    return ds


def use_bundled() -> None:
    """Make the bundled example this session's dataset."""
    st.session_state.source = bundled_source()


def server_models(shown: str) -> list[str]:
    """The embedding sets of the server dataset listed as ``shown``."""
    path = folders.server_datasets().get(shown)
    return folders.models_in(path) if path is not None else []


def use_server_dataset(shown: str, model: str | None) -> None:
    """Make the server dataset listed as ``shown`` (:func:`folders.server_datasets`) this
    session's dataset; on failure the message goes to ``load_error`` and the previous dataset
    stays in use."""
    ss = st.session_state
    try:
        path = folders.server_datasets().get(shown)
        if path is None:
            raise DataError("is not among the datasets this server offers", shown[:80])
        path = folders.allowed_dataset(path)
        key = folder_hash(path)
        load_path(key, str(path), model, in_memory_limit())
        ss.source = {"kind": "path", "path": str(path), "model": model, "key": key, "shown": shown,
                     "label": f"{shown} (server dataset)", "cli_arg": str(path)}
        ss.load_error = None
    except DataError as exc:
        ss.load_error = folders.scrub(str(exc))


# ---------------------------------------------------------------- uploads
def _items(files) -> list[tuple[str, bytes]]:
    return [(f.name, f.getvalue()) for f in files]


def _upload_source(up: dict) -> dict:
    name = up["dataset"].name
    return {"kind": "upload", "path": None, "model": up["model"], "key": up["key"],
            "label": f"upload: {name}", "cli_arg": f"<your {name} folder>"}


def _set_upload(up: dict, ds) -> None:
    """Make ``ds`` (from the upload ``up``) this session's dataset."""
    ss = st.session_state
    up.update(dataset=ds, model=ds.model, key=f"{up['content']}:{ds.model}")
    ss.upload, ss.source, ss.load_error = up, _upload_source(up), None


def use_dataset_upload(files) -> None:
    """Make uploaded files (Streamlit ``UploadedFile``s) this session's dataset, replacing any
    previous upload; a zip's first embedding set, or loose files under a model name guessed from
    their names (:func:`use_upload_model` changes either).

    A failed upload's message goes to ``load_error`` and its files are deleted; the previous dataset
    stays in use. A replaced upload's files are deleted too."""
    ss = st.session_state
    items = _items(files)
    content = content_hash(items)
    if ss.upload and ss.upload["content"] == content:
        ss.source, ss.load_error = _upload_source(ss.upload), None
        return
    is_zip = any(name.lower().endswith(".zip") for name, _ in items)
    models = folders.zip_models(io.BytesIO(items[0][1])) if is_zip and len(items) == 1 else []
    model = (models[0] if models else None) if is_zip else guess_model_name(n for n, _ in items)
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=session_dir()))
    try:
        ds = load_uploaded_dataset(items, folder, model=model, limits=upload_limits())
    except DataError as exc:
        ss.load_error = folders.scrub(str(exc))
        _discard(folder)
        return
    if ss.upload:
        _discard(ss.upload["folder"])
    keep = len(models) > 1  # the archive stays, to load another of its embedding sets
    if not keep:
        _discard(folder)
    _set_upload({"content": content, "files": [n for n, _ in items], "models": models,
                 "loose": not is_zip, "folder": str(folder) if keep else None}, ds)


def use_upload_model(model: str) -> str | None:
    """Another embedding set of the uploaded zip, or another model name for loose files (it names
    the ``emb/<model>/`` folder the Export page's command reads); the error message, or None."""
    up = st.session_state.upload
    if not up or model == up["model"]:
        return None
    try:
        if up["loose"]:
            ds = replace(up["dataset"], model=check_model_name(model))
        elif model in up["models"] and up["folder"]:
            archive = next(Path(up["folder"]).glob("*.zip"))  # the only file kept there
            ds = load_uploaded_zip(archive, model=model, limits=upload_limits())
        else:
            raise DataError(f"expected one of {up['models']}", "embedding set")
    except DataError as exc:
        return folders.scrub(str(exc))
    _set_upload(up, ds)
    return None


def clear_upload() -> None:
    """Forget the uploaded dataset (and delete its files); the bundled example takes over."""
    ss = st.session_state
    if ss.upload:
        _discard(ss.upload["folder"])
    ss.upload, ss.load_error = None, None
    if ss.source["kind"] == "upload":
        use_bundled()


# ---------------------------------------------------------------- the current dataset
def current_dataset():
    """(Dataset, source dict) for this session, or (None, source) with the error shown."""
    src = st.session_state.source
    if src["kind"] == "upload":
        up = st.session_state.upload
        return (up["dataset"], src) if up else (None, src)
    try:
        if src["kind"] == "path":
            folders.allowed_dataset(src["path"])  # still offered (the operator may change it)
        key = src.get("key") or folder_hash(src["path"])
        src["key"] = key
        return load_path(key, src["path"], src.get("model"), in_memory_limit()), src
    except DataError as exc:
        show_error(exc)
        return None, src


def data_key() -> str:
    """The content of this session's dataset: an upload's hash with the model it is filed
    under, or a server folder's hash with the embedding set chosen in it."""
    src = st.session_state.source
    if src["kind"] == "upload":
        up = st.session_state.upload
        return up["key"] if up else "none"
    return (src.get("key") or folder_hash(src["path"])) + ":" + (src.get("model") or "")


def shown_notes(ds, src) -> list[str]:
    """The dataset's loading notes as the page shows them: files named as uploaded, or relative
    to the server dataset or the checkout, never by a path into the upload area."""
    notes = list(ds.notes)
    if src["kind"] == "path" and src.get("path"):
        notes = [n.replace(src["path"], src.get("shown", Path(src["path"]).name)) for n in notes]
    return [folders.scrub(n) for n in notes]


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
