"""The Compare page through AppTest: pin a run, change a setting, pin again; the table, warnings,
renaming and the downloads follow; pins belong to one session.

Runs on app_support's small example (the app's bundled example, pointed at by $NUDGE_EXAMPLE),
with the adaptor left out so each fit is quick.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from app_support import env, errors, goto, new_app, toy  # noqa: F401 (fixtures)
from explorer_app import compare
from nudge_core.comparison import PinnedRun

PAGE = "pages/compare.py"


def _fit(at, gamma_n: float | None = None):
    """On the Fine-tune page: NUDGE-M and NUDGE-N only, NUDGE-N at a fixed γ when given; Fit."""
    goto(at, "pages/finetune.py")
    at.multiselect[0].set_value(["nudge-m", "nudge-n"])
    if gamma_n is not None:
        {r.label: r for r in at.radio}["NUDGE-N γ"].set_value("fixed")
        at.number_input(key="value_nudge-n").set_value(gamma_n)
    at.button[0].click().run()  # the form's submit button
    assert not at.exception and not errors(at), errors(at)


def _pin(at):
    goto(at, PAGE)
    at.button(key="pin_current").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _bar_values(y) -> list[float]:
    """A bar trace's y values as plotly's JSON gives them (a list, or typed-array base64)."""
    if isinstance(y, dict):
        import base64

        import numpy as np
        return np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]).tolist()
    return list(y)


def _table(at):
    return at.dataframe[0].value


def test_two_pins_with_different_gamma_are_compared_and_exported():
    at = new_app()
    at.session_state.split_cfg = dict(at.session_state.split_cfg, ood="bundled")  # its OOD set
    _fit(at)
    _pin(at)
    assert any("Pinned as A" in s.value for s in at.success)
    _fit(at, gamma_n=0.05)
    _pin(at)
    assert any("Pinned as B" in s.value for s in at.success)
    assert not at.warning  # same data, same split: like for like

    table = _table(at)
    assert list(table["run"].unique()) == ["A", "B"]
    assert len(table) == 6  # 2 runs × (none, NUDGE-M, NUDGE-N)
    gamma_n = table[table["method"] == "NUDGE-N"].set_index("run")["γ"]
    assert gamma_n["B"] == pytest.approx(0.05) and gamma_n["A"] != pytest.approx(0.05)
    # the table's numbers are the runs' own: NUDGE-N of B at γ = 0.05 matches the Fine-tune page
    pins = at.session_state[compare.PINS_KEY]
    assert [p.label for p in pins] == ["A", "B"]
    b_n = table[(table["run"] == "B") & (table["method"] == "NUDGE-N")].iloc[0]
    assert b_n["NDCG@10"] == pins[1].methods["nudge-n"].metrics["ndcg@10"]
    assert b_n["Δ NDCG@10 vs none [95% CI]"].startswith(
        f"{pins[1].methods['nudge-n'].compared_to_none['ndcg@10']['delta']:+.4f} [")
    [chart] = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    test_bars = {t["name"]: t for t in chart["data"] if t.get("xaxis", "x") == "x"}
    assert set(test_bars) == {"no fine-tuning", "NUDGE-M", "NUDGE-N"}
    for name, bars in test_bars.items():
        assert list(bars["x"]) == ["A", "B"]
        assert _bar_values(bars["y"]) == pytest.approx(
            list(table[table["method"] == name]["NDCG@10"]), abs=1e-12)
    ood_bars = {t["name"]: t for t in chart["data"] if t.get("xaxis") == "x2"}
    assert set(ood_bars) == set(test_bars)
    assert _bar_values(ood_bars["NUDGE-N"]["y"]) == pytest.approx(
        [p.methods["nudge-n"].ood_metrics["ndcg@10"] for p in pins], abs=1e-12)
    assert list(table[table["method"] == "NUDGE-N"]["OOD NDCG@10"]) == \
        [p.methods["nudge-n"].ood_metrics["ndcg@10"] for p in pins]
    assert {d.label for d in at.get("download_button")} == \
        {text for text, _, _ in compare.DOWNLOADS.values()}

    # the downloads hold both runs
    obj = json.loads(compare.file_bytes("json", pins))
    assert [r["label"] for r in obj["runs"]] == ["A", "B"]
    assert [PinnedRun.from_json(r).methods["nudge-n"].gamma for r in obj["runs"]] == \
        [p.methods["nudge-n"].gamma for p in pins]
    rows = list(csv.DictReader(io.StringIO(compare.file_bytes("csv", pins).decode())))
    gammas = {r["run"]: float(r["value"]) for r in rows
              if r["method"] == "nudge-n" and r["metric"] == "gamma"}
    assert set(gammas) == {"A", "B"} and gammas["B"] == pytest.approx(0.05)
    script = compare.file_bytes("sh", pins).decode()
    commands = [line for line in script.splitlines() if line.startswith("nudge-explorer run")]
    assert len(commands) == 2 and "--gamma-n" not in commands[0] and "--gamma-n 0.05" in commands[1]
    html = compare.file_bytes("html", pins).decode()
    assert html.count("<h2>") == 1 and '"name":"NUDGE-N"' in html.replace(" ", "")


def test_the_same_run_is_pinned_once_and_pins_are_renamed_and_removed():
    at = new_app()
    _fit(at)
    _pin(at)
    at.button(key="pin_current").click().run()
    assert any("already pinned as A" in w.value for w in at.warning)
    assert len(at.session_state[compare.PINS_KEY]) == 1

    at.text_input(key="pin_new_name").set_value("baseline")
    at.button(key="pin_rename").click().run()
    assert list(_table(at)["run"].unique()) == ["baseline"]
    at.text_input(key="pin_new_name").set_value("  ")
    at.button(key="pin_rename").click().run()
    assert "A pin's name cannot be empty." in errors(at)
    at.button(key="pin_remove").click().run()
    assert at.session_state[compare.PINS_KEY] == []
    assert any("No run is pinned yet" in i.value for i in at.info)


def test_a_different_split_is_flagged_as_not_like_for_like():
    at = new_app()
    _fit(at)
    _pin(at)
    goto(at, "pages/data.py")
    at.session_state.split_cfg = dict(at.session_state.split_cfg, seed=1)  # the Data page's seed
    _pin(at)
    assert [p.label for p in at.session_state[compare.PINS_KEY]] == ["A", "B"]
    assert any("different query splits" in w.value for w in at.warning), [w.value for w in at.warning]


def test_pins_are_limited():
    at = new_app()
    _fit(at, gamma_n=0.01)
    _pin(at)
    for i in range(2, compare.MAX_PINS + 1):
        _fit(at, gamma_n=0.01 * i)
        _pin(at)
    assert len(at.session_state[compare.PINS_KEY]) == compare.MAX_PINS
    assert at.button(key="pin_current").disabled


def test_another_session_does_not_see_the_pins():
    first = new_app()
    _fit(first)
    _pin(first)
    assert len(first.session_state[compare.PINS_KEY]) == 1
    second = new_app()
    goto(second, PAGE)
    assert compare.PINS_KEY not in second.session_state or second.session_state[compare.PINS_KEY] == []
    assert any("No run is pinned yet" in i.value for i in second.info)
    assert not second.dataframe
    assert second.button(key="pin_current").label == "Pin the current run as A"
