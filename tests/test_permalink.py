"""A reload keeps the session's choices: they travel in the page address (explorer_app/permalink.py)."""

from __future__ import annotations

import base64
import json
import shutil
import zlib

import pytest
from streamlit.testing.v1 import AppTest

from app_support import APP, errors, goto, new_app, toy  # noqa: F401 (toy: a fixture)
from explorer_app import permalink


def address(at: AppTest) -> str:
    value = at.query_params[permalink.PARAM]
    return value[0] if isinstance(value, list) else value


def reloaded(value: str) -> AppTest:
    """A new session (what a browser reload starts) opened on an address holding ``value``."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params[permalink.PARAM] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def test_changed_settings_and_split_survive_a_reload_with_the_same_results():
    at = new_app()
    [n for n in at.number_input if n.label.startswith("Seed")][0].set_value(3).run()
    goto(at, "pages/finetune.py")
    {r.label: r for r in at.radio}["NUDGE-M γ"].set_value("fixed")
    [n for n in at.number_input if n.label.startswith("fixed NUDGE-M")][0].set_value(0.05)
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    goto(at, "pages/results.py")
    before = at.dataframe[0].value.set_index("method").drop(columns="fit_seconds")
    again = reloaded(address(at))
    assert not warnings(again), warnings(again)
    assert again.session_state.settings_cfg == at.session_state.settings_cfg
    assert again.session_state.split_cfg["seed"] == 3
    goto(again, "pages/results.py")
    after = again.dataframe[0].value.set_index("method").drop(columns="fit_seconds")
    assert after.equals(before)
    assert after.loc["NUDGE-M", "gamma"] == pytest.approx(0.05)


def test_a_server_dataset_is_restored_by_its_listed_name_only(toy, tmp_path, monkeypatch):
    root = tmp_path / "srv"
    root.mkdir()
    shutil.copytree(toy, root / "other")
    monkeypatch.setenv("NUDGE_DATA_DIRS", str(root))
    at = new_app()
    at.radio[0].set_value("path").run()
    [b for b in at.button if b.label == "Load dataset"][0].click().run()
    assert at.session_state.source["kind"] == "path"
    value = address(at)
    again = reloaded(value)
    assert again.session_state.source["shown"] == "other" and not warnings(again)
    shutil.rmtree(root / "other")  # no longer offered: the reload says so and keeps the example
    gone = reloaded(value)
    assert gone.session_state.source["kind"] == "bundled"
    assert any("could not be loaded again" in w and "is not among the datasets" in w
               for w in warnings(gone)), warnings(gone)


def pack(obj) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw)).decode().rstrip("=")


@pytest.mark.parametrize("value, words", [
    ("not base64 at all!", "could not be read"),
    ("A" * 5000, "could not be read"),
    (pack(b"{" * 10), "could not be read"),
    (pack(b" " * 10_000_000), "could not be read"),  # a deflate bomb: 10 MB from ~10 kB
    (pack({"v": 2}), "could not be read"),
    (pack({"v": 1, "settings": {"methods": ["rm -rf"], "choose": "smallest"}}), "Fine-tune settings"),
    (pack({"v": 1, "settings": {"methods": ["nudge-m"], "choose": "smallest", "gamma": {
        "nudge-m": {"mode": "fixed", "value": -1, "range": [0, 1, 0.1]}}}}), "Fine-tune settings"),
    (pack({"v": 1, "settings": {"methods": ["nudge-m"], "choose": "smallest", "gamma": {
        "nudge-m": {"mode": "range", "value": 0.1, "range": [0.5, 0.1, 0.1]}}}}), "Fine-tune settings"),
    (pack({"v": 1, "split": {"seed": "0; import os"}}), "split settings"),
    # values the engine takes but the pages' widgets do not (each crashed a page before)
    (pack({"v": 1, "split": {"seed": 20000}}), "split settings"),
    (pack({"v": 1, "split": {"val_frac": 0.6, "test_frac": 0.6}}), "split settings"),
    (pack({"v": 1, "settings": {"methods": ["none"], "choose": "smallest"}}), "Fine-tune settings"),
    (pack({"v": 1, "settings": {"methods": ["nudge-n"], "choose": "smallest",
                                "objective": "recall@5000"}}), "Fine-tune settings"),
    (pack({"v": 1, "settings": {"methods": ["nudge-n"], "choose": "smallest", "gamma": {
        "nudge-n": {"mode": "automatic", "value": 7.0, "range": [0, 1, 0.1]}}}}), "Fine-tune settings"),
    (pack({"v": 1, "settings": {"methods": ["nudge-n"], "choose": "largest"}}), "Fine-tune settings"),
    (pack({"v": 1, "source": {"kind": "path", "shown": "../../etc"}}), "could not be loaded again"),
    (pack({"v": 1, "source": {"kind": "upload"}}), "Upload it again"),
])
def test_a_hostile_or_stale_address_falls_back_to_the_defaults_with_a_message(value, words):
    defaults = new_app().session_state
    at = reloaded(value)
    assert any(words in w for w in warnings(at)), warnings(at)
    assert not errors(at), errors(at)
    assert at.session_state.source["kind"] == "bundled"
    if "settings" in words or "read" in words:
        assert at.session_state.settings_cfg == defaults.settings_cfg
    goto(at, "pages/results.py")  # and the app works on


def test_every_choice_the_fine_tune_form_offers_round_trips():
    """Each value of the form's choices, set as the form sets it, comes back after a reload."""
    at = new_app()
    goto(at, "pages/finetune.py")
    {r.label: r for r in at.radio}["Choose γ"].set_value("plateau-middle")
    {r.label: r for r in at.radio}["NUDGE-N γ"].set_value("exact")
    [s for s in at.selectbox if s.label.startswith("Validation objective")][0].set_value("mrr")
    [n for n in at.number_input if n.label == "k"][0].set_value(1000)
    at.button[0].click().run()
    assert not at.exception and not errors(at), errors(at)
    cfg = at.session_state.settings_cfg
    assert cfg["choose"] == "plateau-middle" and cfg["objective"] == "mrr@1000"
    again = reloaded(address(at))
    assert not warnings(again), warnings(again)
    assert again.session_state.settings_cfg == cfg


def test_a_page_that_fails_drops_the_choices_from_the_address(monkeypatch):
    at = new_app()
    assert permalink.PARAM in at.query_params

    def broken(*args, **kwargs):
        raise RuntimeError("a state this page cannot draw")
    from explorer_app import runs
    monkeypatch.setattr(runs, "require_result", broken)
    goto(at, "pages/results.py")
    assert any("Something went wrong" in e for e in errors(at))
    assert permalink.PARAM not in at.query_params  # a reload starts from the defaults
