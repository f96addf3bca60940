"""Small Streamlit helpers the pages share: an error box for engine errors, a progress slot."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from .uploads import tidy_message


def show_error(exc: Exception, folder: Path | None = None) -> None:
    """An engine error on the page, with a private upload folder's path cut to ``upload/...``."""
    st.error(tidy_message(str(exc), folder), icon=":material/error:")


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
