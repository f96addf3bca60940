"""Small Streamlit helpers the pages share: the one error boundary every page runs under, an
error box for engine errors, an uploader whose every drop replaces the last, a progress slot."""

from __future__ import annotations

import logging
import secrets
from contextlib import contextmanager

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from nudge_core.errors import DataError, SpecError

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
    try:
        yield
    except ScriptControlException:  # st.stop, st.rerun, st.switch_page
        raise
    except (DataError, SpecError) as exc:
        show_error(exc)
    except Exception as exc:  # noqa: BLE001 - the boundary: nothing may reach the browser
        ref = secrets.token_hex(4)
        LOG.exception("page failed (reference %s)", ref)
        st.error(f"Something went wrong on this page ({type(exc).__name__}); it has been logged on "
                 f"the server under reference {ref}. Try again, change the settings, or go back "
                 "to the Data page.", icon=":material/error:")


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
