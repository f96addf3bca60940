"""The Playground page through AppTest: presets, lesson steps, edits, export (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from nudge_core.playground import PRESETS, positions, preset
from app_support import APP, env, goto, toy  # noqa: F401, F811  (fixtures: the app example)


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
