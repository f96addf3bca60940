"""The split, the settings and the run for this session, cached by data content + settings.

Everything numeric is delegated to ``nudge_core``; this module only decides *which* engine call
to make (:func:`make_split` turns the Data page's choices into a split, :func:`current_spec` the
session's choices into the engine's :class:`~nudge_core.runspec.RunSpec`) and caches the result. Results that report progress to
the page are kept in a process-wide LRU (:class:`_Cache`); the rest in ``st.cache_resource``.
Keys are content hashes, so a revisit is instant and two browsers only share an entry when they
loaded byte-identical data with identical settings.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import replace

import streamlit as st

from nudge_core import DataError, registry, run_experiment
from nudge_core.projection import compute_layout
from nudge_core.runspec import GammaSpec, MethodSettings, RunSpec, SpecError, SplitSpec
from nudge_core.runspec import make_split as spec_split
from nudge_core.sensitivity import GammaRescorer, log_grid, sensitivity_sweep

from .ood_sets import current_ood, ood_arg, ood_key
from .sources import current_dataset, data_key
from .widgets import ProgressSlot, show_error


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
CURVES = _Cache(16)


def _freeze(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- split
def split_spec(cfg: dict) -> SplitSpec:
    """The Data page's choices (``st.session_state.split_cfg``) as a :class:`SplitSpec`; an
    uploaded split file is named as uploaded (the Export page offers it under that name)."""
    if cfg["mode"] == "file":
        return SplitSpec("file", seed=int(cfg["seed"]), file=cfg.get("split_name") or "splits.json")
    if cfg["mode"] == "qrels":
        return SplitSpec("qrels", seed=int(cfg["seed"]), val_frac=float(cfg["val_frac"]))
    return SplitSpec(seed=int(cfg["seed"]), val_frac=float(cfg["val_frac"]),
                     test_frac=float(cfg["test_frac"]))


def make_split(cfg: dict, ds):
    """The split the Data page's choices describe, for ``ds`` (the engine's one split dispatch)."""
    return spec_split(split_spec(cfg), ds, split_obj=cfg.get("split_obj"),
                      kmeans=cfg["ood"] == "kmeans")


@st.cache_resource(max_entries=16, show_spinner="Splitting the queries…")
def _split(key: str, _ds, cfg_json: str):
    return make_split(json.loads(cfg_json), _ds)


def _split_for(ds, cfg: dict):
    return _split(data_key() + ":" + _freeze(cfg), ds, json.dumps(cfg, sort_keys=True))


def split_key() -> str:
    return data_key() + ":" + _freeze(st.session_state.split_cfg)


def current_split(ds):
    try:
        return _split_for(ds, st.session_state.split_cfg)
    except DataError as exc:
        show_error(exc)
        return None


# ---------------------------------------------------------------- settings and the run
def default_settings() -> dict:
    """The Fine-tune page's form state, from the registry: which methods (``methods``), each γ
    method's γ (``gamma[name]``: mode automatic / fixed / range / exact, a fixed value, a range
    whose from/to are also the exact search's bounds), each method's parameters
    (``params[name]``), the validation ``objective`` (None = each method's own) and the
    ``choose`` rule, shared by the γ methods as on the command line."""
    gamma = {}
    for name in registry.gamma_methods():
        grid = registry.get(name).gamma.default_grid
        rng = [0.0, grid[-1], round(grid[1] - grid[0], 12)] if grid else [0.0, 1.0, 0.05]
        gamma[name] = {"mode": "automatic", "value": 0.1, "range": rng}
    return {"methods": [n for n in registry.default_names() if n != registry.REFERENCE],
            "gamma": gamma,
            "params": {n: {p.name: p.default for p in registry.get(n).params}
                       for n in registry.names()},
            "objective": None, "choose": "smallest"}


def method_settings(cfg: dict, name: str) -> MethodSettings:
    """One method's :class:`MethodSettings` from the form state (raises SpecError when invalid)."""
    g = cfg["gamma"].get(name, {"mode": "automatic"})
    if g["mode"] == "fixed":
        gamma = GammaSpec("fixed", value=float(g["value"]))
    elif g["mode"] == "range":
        start, stop, step = (float(x) for x in g["range"])
        gamma = GammaSpec("range", start=start, stop=stop, step=step)
    elif g["mode"] == "exact":
        gamma = GammaSpec("exact", start=float(g["range"][0]), stop=float(g["range"][1]))
    else:
        gamma = GammaSpec()
    choice = {} if registry.get(name).gamma is None else \
        {"objective": cfg.get("objective"), "choose": cfg.get("choose", "smallest")}
    return MethodSettings(name, gamma, dict(cfg["params"].get(name, {})), **choice)


def current_spec() -> RunSpec:
    """This session's :class:`RunSpec` (data source, split, methods, OOD); SpecError if invalid."""
    ss = st.session_state
    src, cfg = ss.source, ss.settings_cfg
    return RunSpec(src["cli_arg"], src.get("model"), split_spec(ss.split_cfg),
                   tuple(method_settings(cfg, n) for n in cfg["methods"]), ood_arg())


def cli_spec(spec: RunSpec) -> RunSpec:
    """The spec as the Export page's command runs it next to the downloaded split file: that file
    already holds the k-means OOD queries, so ``--ood kmeans`` is dropped with it."""
    if spec.split.mode == "file" and spec.ood == "kmeans":
        return replace(spec, ood=None)
    return spec


def run_key() -> str:
    """Every input of the run: data content, split choices (with an uploaded split file's
    content), the run spec and the OOD set's content."""
    return (split_key() + ":" + current_spec().key() + ":" + ood_key())


def _experiment(key: str, ds, split, spec, ood, progress):
    return EXPERIMENTS.get(key, lambda: run_experiment(ds, split, spec, ood=ood, progress=progress))


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
    ood, _, _ = current_ood(ds)
    try:
        spec = current_spec()
    except SpecError as exc:
        show_error(exc)
        return None
    if split.ood:
        ood = None
    progress = ProgressSlot("Fitting: ", show=show_progress)
    try:
        result = _experiment(run_key(), ds, split, spec, ood, progress)
    except (DataError, ValueError) as exc:
        progress.clear()
        show_error(exc)
        return None
    progress.clear()
    return result


# ---------------------------------------------------------------- views of one run
@st.cache_resource(max_entries=8, show_spinner="Preparing the γ re-scorer…")
def _rescorer(key: str, method: str, _result):
    res = _result.methods[method]
    return GammaRescorer(res.estimator, {"test": _result.test, "ood": _result.ood})


def rescorer(result, method: str):
    return _rescorer(run_key(), method, result)


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


def _sweep(key: str, ds, splits, spec, ood, n_points: int, progress):
    grids = {m: log_grid(m, n_points) for m in spec.names if registry.get(m).gamma is not None}
    return SWEEPS.get(key, lambda: sensitivity_sweep(ds, splits, spec, ood=ood, grids=grids,
                                                     progress=progress))


def sweep(ds, seeds: list[int], methods: tuple, n_points: int, progress):
    """The sensitivity sweep of ``methods`` (γ methods of this session's spec, with the user's
    Fine-tune settings) over ``seeds`` split seeds."""
    cfg = st.session_state.split_cfg
    splits = [_split_for(ds, dict(cfg, seed=int(seed))) for seed in seeds]
    ood, _, _ = current_ood(ds)
    spec = current_spec()
    spec = spec.with_methods(*[m for m in spec.methods if m.name in methods])
    key = f"{data_key()}:{_freeze(cfg)}:{seeds}:{spec.key()}:{n_points}:{ood_key()}"
    return _sweep(key, ds, splits, spec, ood, n_points, progress)
