"""Download buttons whose file is built on click (``data=`` a callable).

Streamlit runs such a callable on a worker thread of its own (``asyncio.to_thread`` in
``BackendOperationHandler``), outside the script run: there ``st.session_state`` is a process-wide
stand-in, not the clicking session's, so a callable that reads it fails ("Failed to generate file
for download") or, worse, reads another session's values. These tests catch every such callable a
page hands to ``download_button`` and call it the way Streamlit does, on a fresh thread without the
script's context.
"""

from __future__ import annotations

import threading

import pytest
import streamlit
from streamlit.delta_generator import DeltaGenerator

from app_support import env, goto, new_app, toy  # noqa: F401 (fixtures)


@pytest.fixture()
def deferred(monkeypatch) -> dict:
    """label -> the callable each ``download_button`` of the next runs was given."""
    seen: dict = {}
    original = DeltaGenerator.download_button

    def spy(self, label, data, *args, **kwargs):
        if callable(data):
            seen[label] = data
        return original(self, label, data, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", spy)
    # st.download_button is bound to the main container when streamlit is imported
    monkeypatch.setattr(streamlit, "download_button",
                        lambda label, data, *a, **k: spy(streamlit._main, label, data, *a, **k))
    return seen


def built_off_the_script_thread(make) -> object:
    out = {}

    def run():
        try:
            out["data"] = make()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            out["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(300)
    assert "error" not in out, repr(out.get("error"))
    return out["data"]


@pytest.mark.parametrize("page, label", [("pages/export.py", "Figures (one HTML file, works offline)"),
                                         ("pages/sensitivity.py", "Sweep (JSON)")])
def test_files_built_on_click_need_no_session_state(deferred, page, label):
    at = new_app()
    goto(at, page)
    assert label in deferred, sorted(deferred)
    for name, make in deferred.items():
        data = built_off_the_script_thread(make)
        assert isinstance(data, (bytes, str)) and len(data) > 100, name
