"""The Playground page through AppTest: presets, lesson steps, edits, export (issue 14)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer_app.geometry import (CLICK_RADII, CLICK_TRACE, add_click_rings, clicked_angle,
                                   playground_figure, png_bytes, png_unavailable,
                                   without_click_rings)
from nudge_core.playground import (PRESETS, describe, fit_at, from_tables, move, positions, preset,
                                   rankings)
from optional import needs
from app_support import APP, env, goto, toy  # noqa: F401, F811  (fixtures: the app example)


NOTHING = "— nothing (clicks do nothing) —"


def open_playground() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return goto(at, "pages/playground.py")


@pytest.mark.parametrize("dim", ["2-D circle", "3-D sphere"])
def test_every_preset_renders(dim):
    at = open_playground()
    at.radio(key="pg_dim").set_value(dim).run()
    for name in PRESETS:
        at.selectbox(key="pg_preset").set_value(name).run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert not at.error, (name, [e.value for e in at.error])
        assert len(at.slider) == 2 and at.dataframe


def test_lesson_steps_set_the_sliders_and_the_figure_follows():
    at = open_playground()
    at.selectbox(key="pg_preset").set_value("ood").run()
    ood = preset("ood")
    for step in ood.steps[1:]:
        at.button(key="pg_next").click().run()
        assert not at.exception
        for key in ("pg_gamma_nudge-m", "pg_gamma_nudge-n"):
            assert at.slider(key=key).value == pytest.approx(step.gamma)
        assert any(step.text in i.value for i in at.info)
    # the table ranks what the engine ranks at that γ: NUDGE-M's record 0 has stolen the OOD query
    table = [d.value for d in at.dataframe if "query" in d.value.columns][0].set_index("query")
    ood_row = [q for q in table.index if q.startswith("ood")][0]
    assert table.loc[ood_row, "NUDGE-M"].split()[0] == "0"
    assert table.loc[ood_row, "NUDGE-N"].split()[0] == "1"
    moved = positions(ood, "nudge-m", ood.steps[-1].gamma)[0] - ood.records[0]
    assert np.linalg.norm(moved) == pytest.approx(ood.steps[-1].gamma, abs=1e-5)


def test_edit_tables_and_html_export_are_offered():
    at = open_playground()
    at.selectbox(key="pg_preset").set_value("one-pull").run()
    at.slider(key="pg_gamma_nudge-n").set_value(1.0).run()
    before = [d.value for d in at.dataframe if "query" in d.value.columns][0]
    editor = at.get("data_editor")
    assert editor, "the edit tables are on the page"
    assert any(d.label.startswith("This figure as HTML") for d in at.get("download_button"))
    assert not at.exception and len(before)


def drawn(at: AppTest, name: str, nth: int = 0) -> np.ndarray:
    """(n, 2) x, y of the trace named ``name...`` in the page's ``nth`` plotly chart."""
    spec = json.loads(at.get("plotly_chart")[nth].proto.spec)
    t = next(t for t in spec["data"] if t.get("name", "").startswith(name))
    return np.column_stack([_values(t["x"]), _values(t["y"])])


def _values(v) -> np.ndarray:
    if isinstance(v, dict):  # plotly's typed arrays: {"dtype", "bdata": base64}
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).astype(float)
    return np.asarray(v, float)


def test_a_click_moves_the_chosen_point_and_everything_is_refitted():
    """The click itself is a plotly selection in the browser (tests/e2e); here the page gets the
    angle it yields (what its on_select callback stores) and must redraw the edited problem."""
    at = open_playground()
    at.selectbox(key="pg_preset").set_value("ood").run()
    at.slider(key="pg_gamma_nudge-m").set_value(1.5).run()
    assert at.button(key="pg_reset").disabled
    at.selectbox(key="pg_target").set_value("record 1").run()
    at.session_state["pg_click"] = 180.0
    at.run()
    assert not at.exception and not at.error
    ood = preset("ood")
    edited = from_tables(ood, *move(*describe(ood), "record 1", 180.0))
    before = drawn(at, "records before")
    assert np.allclose(before, edited.records, atol=1e-6)
    assert np.degrees(np.arctan2(before[1, 1], before[1, 0])) == pytest.approx(180, abs=1e-4)
    assert np.allclose(drawn(at, "NUDGE-M records at γ"), positions(edited, "nudge-m", 1.5), atol=1e-6)
    assert any(h.value.endswith("(edited)") for h in at.subheader)
    # the rankings are the edited problem's: record 1 sits opposite the OOD query now
    table = [d.value for d in at.dataframe if "query" in d.value.columns][0].set_index("query")
    ood_row = [q for q in table.index if q.startswith("ood")][0]
    expected = rankings(edited, fit_at(edited, "nudge-n", 0.0), edited.ood)[0, :3]
    assert table.loc[ood_row, "before"] == " ".join(map(str, expected))
    assert table.loc[ood_row, "before"].split()[0] == "0"  # record 1 no longer answers it first
    # a click while nothing is chosen does nothing; reset brings the preset back
    at.selectbox(key="pg_target").set_value(NOTHING).run()
    at.session_state["pg_click"] = 0.0
    at.run()
    assert np.allclose(drawn(at, "records before"), edited.records, atol=1e-6)
    at.button(key="pg_reset").click().run()
    assert np.allclose(drawn(at, "records before"), ood.records, atol=1e-6)
    assert not any(h.value.endswith("(edited)") for h in at.subheader)


def test_class_mode_uses_big_fonts():
    at = open_playground()
    at.selectbox(key="pg_preset").set_value("ood").run()
    small = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]
    assert not at.table  # the interactive table in normal mode
    at.toggle(key="pg_big").set_value(True).run()
    assert not at.exception
    big = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]
    assert big["font"]["size"] > small["font"]["size"] >= 13 and big["legend"]["font"]["size"] >= 18
    assert at.table, "big mode shows the rankings as a large-font table"
    assert any(m.value.startswith("### Lesson step 1") for m in at.info)
    assert any(m.value.startswith("#### ") and "NUDGE-M makes moved records longer" in m.value
               for m in at.markdown)


def test_clicked_angle_reads_a_plotly_selection():
    event = {"selection": {"points": [{"x": -1.0, "y": 0.0, "curve_number": 9, "point_index": 180}],
                           "point_indices": [180], "box": [], "lasso": []}}
    assert clicked_angle(event) == pytest.approx(180.0)
    assert clicked_angle({"selection": {"points": [{"x": 0.3, "y": -0.3}]}}) == pytest.approx(-45.0)
    assert clicked_angle({"selection": {"points": []}}) is None and clicked_angle(None) is None


def test_click_rings_are_one_marker_per_degree_and_left_out_of_exports():
    toy = preset("one-pull")
    fig = playground_figure(toy, {"nudge-m": positions(toy, "nudge-m", 0.5)}, {"nudge-m": 0.5})
    n = len(fig.data)
    add_click_rings(fig)
    ring = fig.data[-1]
    assert ring.name == CLICK_TRACE and len(ring.x) == 360 * len(CLICK_RADII)
    angles = np.degrees(np.arctan2(ring.y, ring.x)).round(6) % 360
    assert set(angles) == set(range(360))
    assert len(without_click_rings(fig).data) == n
    assert CLICK_TRACE not in {t.name for t in without_click_rings(fig).data}


def test_caps_are_drawn_as_arcs_without_chords():
    """NUDGE-N's cap around record 0 (at angle 0) straddles the circle's seam; drawn as one arc,
    consecutive points stay a small step apart (no chord across the circle)."""
    toy = preset("one-pull")
    fig = playground_figure(toy, {"nudge-n": positions(toy, "nudge-n", 1.0)}, {"nudge-n": 1.0})
    cap = next(t for t in fig.data if t.name and "cap" in t.name)
    xy = np.column_stack([cap.x, cap.y]).astype(float)
    xy = xy[~np.isnan(xy).any(axis=1)]
    assert np.all(np.sum((xy - toy.records[0]) ** 2, axis=1) <= 1.0 + 1e-9)
    assert np.linalg.norm(np.diff(xy, axis=0), axis=1).max() < 0.02


def test_png_export_needs_kaleido_and_says_so(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "kaleido" else real(n, *a))
    assert "needs the optional package kaleido" in png_unavailable()
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object())
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "needs Chrome or Chromium" in png_unavailable()


def test_png_export_renders_the_figure():
    needs("kaleido")
    toy = preset("ood")
    fig = playground_figure(toy, {"nudge-m": positions(toy, "nudge-m", 1.0)}, {"nudge-m": 1.0})
    if png_unavailable():
        pytest.fail(png_unavailable())
    png = png_bytes(fig, width=700, height=500)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (700, 500)
