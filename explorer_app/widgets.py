"""Small Streamlit helpers the pages share: the one error boundary every page runs under, an
error box for engine errors, an uploader whose every drop replaces the last, a progress slot, the
panel of a background job (progress, Cancel, polling)."""

from __future__ import annotations

import logging
import os
import secrets
from contextlib import contextmanager

import numpy as np
import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from nudge_core.errors import DataError, SpecError
from nudge_core.registry import label

from . import jobs
from .figures import gamma_axis
from .folders import scrub

LOG = logging.getLogger("nudge_explorer")
if not LOG.handlers:  # the server's log: Streamlit's stderr, with a time stamp
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    LOG.addHandler(_handler)


def show_error(exc: Exception | str) -> None:
    """An engine error on the page, with any server path into the upload area cut away."""
    st.error(scrub(str(exc)), icon=":material/error:")


@contextmanager
def page_errors():
    """The one boundary each page's body runs under (``with page_errors():`` after
    ``session.boot()``): bad input that
    reached it is shown as the engine worded it; anything else is logged on the server with its
    traceback and shown as a short box with a reference to find it in the log."""
    from .permalink import forget, remember

    if "source" in st.session_state:  # at once (a long page run may be reloaded before its end)
        remember(st.session_state)
    failed = False
    try:
        yield
    except ScriptControlException:  # st.stop, st.rerun, st.switch_page
        raise
    except (DataError, SpecError) as exc:
        show_error(exc)
    except Exception as exc:  # noqa: BLE001 - the boundary: nothing may reach the browser
        failed = True
        ref = secrets.token_hex(4)
        LOG.exception("page failed (reference %s)", ref)
        st.error(f"Something went wrong on this page ({type(exc).__name__}); it has been logged on "
                 f"the server under reference {ref}. Try again, change the settings, or go back "
                 "to the Data page.", icon=":material/error:")
    finally:
        if failed:  # a state that breaks the page must not come back with a reload
            forget()
        elif "source" in st.session_state:  # the choices this run ended with, into the address
            remember(st.session_state)


def replacing_uploader(label: str, key: str, **kwargs) -> list:
    """A multi-file uploader whose every drop replaces the previous files: returns the files of a
    new drop once, and the next run shows an empty uploader again (call ``st.rerun()`` after
    taking them). Streamlit's own widget would add each drop to the files already there."""
    ss = st.session_state
    turn = ss.setdefault(f"{key}_turn", 0)
    files = st.file_uploader(label, accept_multiple_files=True, key=f"{key}_{turn}", **kwargs)
    if files:
        ss[f"{key}_turn"] = turn + 1
    return files or []


class ProgressSlot:
    """A placeholder that turns into a progress bar on the first report (an engine ``progress``
    callback: ``slot(fraction, message)``); :meth:`clear` removes it."""

    def __init__(self, prefix: str = "", show: bool = True) -> None:
        self.prefix = prefix
        self.show = show
        self.box = st.empty()

    def __call__(self, fraction: float, message: str) -> None:
        if self.show:
            self.box.progress(min(1.0, fraction), text=self.prefix + message)

    def clear(self) -> None:
        self.box.empty()


#: Seconds between two looks of a page at its background job (a fragment rerun: cheap).
POLL_SECONDS = float(os.environ.get("NUDGE_JOB_POLL", "1.0"))


def job_panel(job: jobs.Job, key: str, forget, cancel) -> None:
    """What a page shows while ``job`` (the slow methods of its run) is not merged in: a
    progress bar with a Cancel button that polls the job and reruns the page when it ends; or
    the job's end (cancelled, failed) with a button to run it again (``forget(key)`` first).
    ``cancel()`` is this session's Cancel (:meth:`jobs.JobRegistry.cancel`)."""
    if job.state == jobs.RUNNING:
        _running(job, cancel)
        return
    if job.state == jobs.CANCELLED:
        stopping = " (stopping at its next progress report)" if job.stopping else ""
        st.info(f"**{job.label}**: cancelled{stopping}. The other methods' numbers are shown.",
                icon=":material/cancel:")
    else:
        if not isinstance(job.error, (DataError, SpecError, ValueError)):
            LOG.error("background job %s failed", job.label, exc_info=job.error)
        show_error(f"{job.label} failed: {job.error}")
    if st.button(f"Run {job.label} again", key="job_again"):
        forget(key)
        st.rerun()


@st.fragment(run_every=POLL_SECONDS)
def _running(job: jobs.Job, cancel) -> None:
    with page_errors():
        if job.state != jobs.RUNNING:  # done, failed or cancelled: redraw the whole page
            st.rerun()
        with st.container(border=True):
            st.markdown(f"**{job.label} still running…** The numbers shown are the other "
                        "methods'; this page fills in by itself when it is done. You may leave "
                        "the page: the run goes on. A reload keeps your settings (they are in the "
                        "page address) and finds this run again; an uploaded dataset has to be "
                        "uploaded again, and then the run is found too.")
            ahead = sum(j.started is not None for j in jobs.JOBS.running())
            text = (f"waiting for a free worker ({ahead} runs ahead)" if job.queued
                    else f"{job.message} · {job.seconds:.0f} s")
            st.progress(job.fraction, text=text)
            if st.button("Cancel", key="job_cancel", icon=":material/stop_circle:"):
                cancel()
                st.rerun()


# ---------------------------------------------------------------- the γ sliders of the Fine-tune page
#: Notches of a γ slider over the chart's axis.
SLIDER_STEPS = 400


def slider_stops(curve_gammas: np.ndarray, chosen: float | None) -> tuple[float, float]:
    """(top, step) of a γ slider: it runs over the chart's γ axis (:func:`figures.gamma_axis`,
    so every notch lands on the drawn part of the curve; ``top`` is within one step of the
    axis' end), and its step divides the chosen γ, so one notch is the chosen γ (up to
    rounding; the "back" button sets it exactly)."""
    top = max(gamma_axis(curve_gammas, chosen)[1], float(chosen or 0.0))
    if not chosen or chosen <= 0:
        return top, top / SLIDER_STEPS
    step = float(chosen) / max(1, round(float(chosen) / (top / SLIDER_STEPS)))
    # the last whole notch (the browser's slider would round a top between notches up, past
    # the axis); never below the chosen γ, which is a notch itself
    return max(float(chosen), np.floor(top / step + 1e-9) * step), step


def _set(key: str, value: float) -> None:
    st.session_state[key] = value


def gamma_slider(method: str, res, curve_gammas: np.ndarray, snap: bool, run_key: str) -> float:
    """``method``'s γ slider (``res``: its MethodResult) and a button back to the chosen γ;
    returns the γ to re-score at. A new run (``run_key``) puts it at that run's chosen γ.
    ``snap``: a select slider over the validation curve's events (where some ranking changes)
    that lie on the chart's axis, with the chosen γ among them."""
    ss = st.session_state
    gamma = float(res.gamma)
    top, step = slider_stops(curve_gammas, gamma)
    key = f"slider_{method}"
    # a new fit, or a return to this page (Streamlit then dropped the widget's value): the
    # slider starts at the fit's chosen γ
    if ss.get(f"slider_run_{method}") != run_key or key not in ss:
        ss[f"slider_run_{method}"] = run_key
        ss[key] = gamma
    ss[key] = min(max(float(ss[key]), 0.0), top)
    events = np.asarray(curve_gammas, dtype=float)
    events = events[(events >= 0) & (events <= top)]
    if snap and len(events) > 1:
        key = f"snap_{method}_{run_key}"
        picks = np.unique(np.concatenate([events[np.linspace(0, len(events) - 1, min(
            len(events), 2000)).astype(int)], [gamma]]))  # at most ~2,000 stops
        if key not in ss or ss[key] not in picks:
            ss[key] = gamma
        value = st.select_slider(f"{label(method)} γ (events)", options=picks.tolist(),
                                 format_func=lambda x: f"{x:.4g}", key=key)
    else:
        value = st.slider(f"{label(method)} γ", 0.0, top, step=step, format="%.4g", key=key)
    st.button(f"back to the chosen γ = {gamma:.4g}", key=f"back_{method}", on_click=_set,
              args=(key, gamma), disabled=value == gamma, icon=":material/undo:", type="tertiary")
    return float(value)
