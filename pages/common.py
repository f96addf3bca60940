"""Shared Streamlit plumbing for the pages: where data comes from, session state, caches.

Everything numeric is delegated to ``nudge_core``; this module only decides *which* engine call
to make and caches it by data content + settings. Per-session state (the chosen source, uploads
and their private temporary folder) lives in ``st.session_state``; heavy engine results live in
``st.cache_resource`` keyed by content hashes, so a revisit is instant and two browsers only share
an entry when they loaded byte-identical data with identical settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import weakref
from pathlib import Path

import streamlit as st

from nudge_core import DataError, Settings, kmeans_ood_split, load_dataset, load_query_set, run_experiment
from nudge_core.data import available_models
from nudge_core.files import dataset_root
from nudge_core.projection import compute_layout
from nudge_core.sensitivity import GammaRescorer, sensitivity_sweep
from nudge_core.splits import paper_split, split_from_dict, split_from_qrels_files
from nudge_core.uploads import folder_hash, tidy_message

ROOT = Path(__file__).resolve().parents[1]


class _Cache:
    """A process-wide LRU of heavy engine results keyed by content hash + settings.

    Used instead of ``st.cache_resource`` where the computation reports progress to the page:
    Streamlit would record and replay those progress elements on every cache hit."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.items: dict = {}
        self.lock = threading.Lock()

    def get(self, key, compute):
        with self.lock:
            if key in self.items:
                self.items[key] = self.items.pop(key)  # most recent last
                return self.items[key]
        value = compute()
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.max_entries:
                self.items.pop(next(iter(self.items)))
        return value


EXPERIMENTS = _Cache(6)
LAYOUTS = _Cache(8)
SWEEPS = _Cache(6)
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


def upload_limit_mb() -> int:
    return int(st.get_option("server.maxUploadSize"))


DEFAULT_SPLIT = {"mode": "paper", "seed": 0, "val_frac": 0.1, "test_frac": 0.2, "ood": "none",
                 "split_obj": None, "split_name": None}
DEFAULT_SETTINGS = {"methods": ["adaptor", "nudge-m", "nudge-n"], "gamma_m_mode": "automatic",
                    "gamma_m": 0.1, "gamma_n_mode": "automatic", "gamma_n": 0.1,
                    "range": [0.0, 0.48, 0.02], "val_k": 1}


def ensure_app() -> None:
    """Make sure ``app.py`` (navigation + session set-up) ran in this script run.

    Streamlit keeps a legacy mode for apps with a ``pages/`` folder: until some session has run
    ``st.navigation``, a deep link such as ``/results`` into a freshly started server runs that
    page file alone. Leave that mode and rerun, so ``app.py`` runs and routes to the page."""
    if "source" in st.session_state:
        return
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()


def init_session() -> None:
    ss = st.session_state
    if "source" not in ss:
        path = example_path()
        ss.source = {"kind": "bundled", "path": str(path), "model": None,
                     "label": f"bundled example ({path.name})", "cli_arg": _cli_path(path)}
    ss.setdefault("split_cfg", dict(DEFAULT_SPLIT))
    ss.setdefault("settings_cfg", json.loads(json.dumps(DEFAULT_SETTINGS)))
    ss.setdefault("upload", None)  # {"key", "dataset", "folder", "name"}
    ss.setdefault("ood_upload", None)  # {"key", "queries", "name"}
    ss.setdefault("load_error", None)


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


def _cli_path(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def show_error(exc: Exception, folder: Path | None = None) -> None:
    st.error(tidy_message(str(exc), folder), icon=":material/error:")


# ---------------------------------------------------------------- data
@st.cache_resource(max_entries=4, show_spinner="Loading the dataset…")
def _load_path(key: str, path: str, model: str | None):
    return load_dataset(path, model)


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
        return _load_path(key, src["path"], src.get("model")), src
    except DataError as exc:
        show_error(exc)
        return None, src


def data_key() -> str:
    src = st.session_state.source
    if src["kind"] == "upload":
        up = st.session_state.upload
        return up["key"] if up else "none"
    return src.get("key") or path_key(src["path"])


def models_at(path: str) -> list[str]:
    p = Path(path)
    return available_models(dataset_root(p)) if p.is_dir() else []


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


# ---------------------------------------------------------------- split
def _freeze(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@st.cache_resource(max_entries=16, show_spinner="Splitting the queries…")
def _split(key: str, _ds, cfg_json: str):
    cfg = json.loads(cfg_json)
    if cfg["mode"] == "file":
        split = split_from_dict(cfg["split_obj"], _ds, cfg.get("split_name") or "split file")
    elif cfg["mode"] == "qrels":
        split = split_from_qrels_files(_ds, seed=cfg["seed"], val_frac=cfg["val_frac"])
    else:
        split = paper_split(_ds.labelled_ids, seed=cfg["seed"], val_frac=cfg["val_frac"],
                            test_frac=cfg["test_frac"])
    if cfg["ood"] == "kmeans" and not split.ood:
        split = kmeans_ood_split(_ds, split, seed=cfg["seed"])
    return split


def split_key() -> str:
    return data_key() + ":" + _freeze(st.session_state.split_cfg)


def current_split(ds):
    try:
        return _split(split_key(), ds, json.dumps(st.session_state.split_cfg, sort_keys=True))
    except DataError as exc:
        show_error(exc)
        return None


@st.cache_resource(max_entries=4, show_spinner="Loading the OOD query set…")
def _load_ood_dir(key: str, path: str, _ds):
    return load_query_set(path, _ds)


def current_ood(ds):
    """(QuerySet | None, source string | None, texts) for the chosen OOD option."""
    cfg = st.session_state.split_cfg
    src = st.session_state.source
    if cfg["ood"] == "bundled":
        folder = bundled_ood_dir(src)
        if folder is None:
            return None, None, None
        try:
            extra = _load_ood_dir(data_key() + folder_hash(folder), str(folder), ds)
        except DataError as exc:
            show_error(exc)
            return None, None, None
        return extra.queries, _cli_path(folder), extra.texts
    if cfg["ood"] == "upload":
        up = st.session_state.ood_upload
        if up and up.get("data_key") == data_key():
            return up["queries"].queries, "uploaded OOD set", up["queries"].texts
        return None, None, None
    return None, None, None


# ---------------------------------------------------------------- settings and the run
def current_settings() -> Settings:
    cfg = st.session_state.settings_cfg
    gammas = None
    if cfg["gamma_n_mode"] == "range":
        lo, hi, step = cfg["range"]
        n = int((hi - lo) / step + 1e-9) + 1
        gammas = tuple(round(lo + i * step, 12) for i in range(n))
    return Settings(methods=tuple(cfg["methods"]),
                    gamma_m=cfg["gamma_m"] if cfg["gamma_m_mode"] == "fixed" else None,
                    gamma_n=cfg["gamma_n"] if cfg["gamma_n_mode"] == "fixed" else None,
                    gammas_n=gammas, val_k=int(cfg["val_k"]))


def run_key() -> str:
    return split_key() + ":" + _freeze(st.session_state.settings_cfg)


def _experiment(key: str, ds, split, settings, ood, ood_source, progress):
    return EXPERIMENTS.get(key, lambda: run_experiment(ds, split, settings, ood=ood,
                                                      ood_source=ood_source, progress=progress))


def require_result(show_progress: bool = True):
    """:func:`current_result`, or stop the page (the reason is already on it)."""
    result = current_result(show_progress)
    if result is None:
        st.stop()
    return result


def current_result(show_progress: bool = True):
    """The experiment for the current data, split and settings (cached); None when impossible."""
    ds, src = current_dataset()
    if ds is None:
        st.info("Load a dataset on the **Data** page first.")
        return None
    split = current_split(ds)
    if split is None:
        return None
    ood, ood_source, _ = current_ood(ds)
    try:
        settings = current_settings()
    except ValueError as exc:
        show_error(exc)
        return None
    if split.ood:
        ood, ood_source = None, None
    box = st.empty()
    bar = None

    def progress(fraction: float, message: str) -> None:
        nonlocal bar
        if show_progress:
            bar = bar or box.progress(0.0, text="Fitting…")
            bar.progress(min(1.0, fraction), text=f"Fitting: {message}")

    try:
        result = _experiment(run_key() + (ood_source or ""), ds, split, settings, ood, ood_source,
                             progress)
    except (DataError, ValueError) as exc:
        box.empty()
        show_error(exc)
        return None
    box.empty()
    return result


@st.cache_resource(max_entries=8, show_spinner="Preparing the γ re-scorer…")
def _rescorer(key: str, method: str, _result):
    res = _result.methods[method]
    return GammaRescorer(res.estimator, {"test": _result.test, "ood": _result.ood})


def rescorer(result, method: str):
    return _rescorer(run_key(), method, result)


CURVES = _Cache(16)


def test_curve(result, method: str, gammas):
    """Test NDCG@10 along ``gammas`` for the γ-curve chart (cached: slider moves stay instant)."""
    key = (run_key(), method, len(gammas), float(gammas[0]), float(gammas[-1]))
    return CURVES.get(key, lambda: rescorer(result, method).curve(gammas))


def layout(result, method: str, projection: str, max_points: int, n_epochs, progress):
    res = result.methods[method]
    est = res.estimator
    ds = result.dataset

    def compute():
        queries = {"train": ds.queries(result.split.train).emb, "test": result.test.emb}
        return compute_layout(ds.corpus_emb, est.moved_, res.embeddings[est.moved_], queries,
                              method=projection, max_points=int(max_points), n_epochs=n_epochs,
                              progress=progress)
    return LAYOUTS.get((run_key(), method, projection, int(max_points), n_epochs), compute)


def _sweep(key: str, ds, splits, ood, methods: tuple, n_points: int, progress):
    from nudge_core.sensitivity import log_grid

    grids = {m: log_grid(m, n_points) for m in methods}
    return SWEEPS.get(key, lambda: sensitivity_sweep(ds, splits, ood=ood, methods=methods,
                                                     grids=grids, progress=progress))


def sweep(ds, seeds: list[int], methods: tuple, n_points: int, progress):
    cfg = st.session_state.split_cfg
    splits = []
    for seed in seeds:
        one = dict(cfg, seed=int(seed))
        splits.append(_split(data_key() + ":" + _freeze(one), ds, json.dumps(one, sort_keys=True)))
    ood, source, _ = current_ood(ds)
    key = f"{data_key()}:{_freeze(cfg)}:{seeds}:{methods}:{n_points}:{source}"
    return _sweep(key, ds, splits, ood, methods, n_points, progress)


def text_lookup(ds, src):
    """record id -> text (or a note when the text is unavailable), or None without texts."""
    if ds.corpus_text:
        return ds.corpus_text.get
    if src["kind"] == "bundled" and Path(src["path"]).resolve() == BUNDLED_EXAMPLE.resolve():
        from nudge_core.stdlib_docs import record_text

        def lookup(rid: str) -> str:
            return record_text(rid) or "(the running Python lacks this record)"
        return lookup
    return None


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
        st.caption(f"**Methods:** {', '.join(ss.settings_cfg['methods'])}")
        st.caption(f"Uploads up to {upload_limit_mb()} MB per file.")
