"""Browser checks of issue 11's defects that only a browser sees, at 1400×900 (the others have
their own browser tests: 5 and 6 in ``test_movement_browser.py``, 12 in ``test_background_runs.py``,
the console errors in ``test_console.py``).

On the bundled example: after a Fit with new γ settings the re-score sliders and their metrics
follow the new fit (defect 1); the test-NDCG curve is sampled where its panel's γ axis is
(defect 2); the Results metrics table reaches MRR without scrolling and the top-10 tables give
their text the width (defect 14). On an upload of loose files: the loading notes name the file as
uploaded, never a server path (defect 7); a second drop replaces the first files and "Clear the
upload" empties the uploader (defect 9). Screenshots go where the other browser tests' do.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest

from browser_support import CHROMIUM, check, go, settle

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")]

METRIC = '[data-testid="stMetric"]'
LOOSE = ("corpus.npy", "queries.npy", "corpus_ids.txt", "query_ids.txt", "test.tsv")


@pytest.fixture(scope="module", autouse=True)
def no_umap_warmup():
    """Set before the module's server starts: UMAP's background compile (for the Movement page)
    would compete for this test's cores and no page here draws UMAP."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NUDGE_NO_WARMUP", "1")
        yield


# ---------------------------------------------------------------- reading the page
def page_text(page) -> str:
    """What the page shows: its text and its tables' cells (drawn on a canvas, mirrored in an
    accessible table)."""
    cells = page.locator('[data-testid="stDataFrame"] td').all_text_contents()
    return page.locator('[data-testid="stApp"]').inner_text() + "\n" + "\n".join(cells)


def table_rows(page, nth: int = 0) -> list[list[str]]:
    """The cells of the ``nth`` dataframe on the page, row by row (its accessible mirror)."""
    return page.locator('[data-testid="stDataFrame"]').nth(nth).evaluate(
        "e => [...e.querySelectorAll('tr')].map(r => [...r.querySelectorAll('td')]"
        ".map(c => c.textContent.trim())).filter(r => r.length)")


def table_columns(page, nth: int) -> list[list]:
    """[title, width in px] of each column of the ``nth`` dataframe, as the grid draws them: the
    ``columns`` prop Streamlit hands glide-data-grid (read from React's fiber of the canvas)."""
    return page.locator('[data-testid="stDataFrame"]').nth(nth).evaluate(
        "e => { const c = e.querySelector('canvas'); if (!c) return null;"
        " const k = Object.keys(c).find(k => k.startsWith('__reactFiber$'));"
        " for (let f = k && c[k]; f; f = f.return) { const p = f.memoizedProps;"
        "  if (p && Array.isArray(p.columns) && p.columns.length && p.columns[0].width !== undefined)"
        "   return p.columns.map(x => [x.title, x.width]); } return null; }")


def sliders(page) -> list[list]:
    """[label, value] of each slider on the page that belongs to the current script run (a
    rerun leaves the previous run's elements on the page, marked stale, until it ends)."""
    return page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=\"stSlider\"]')]"
        ".filter(s => !s.closest('[data-stale=\"true\"]')).map(s => {"
        " const l = s.querySelector('[data-testid=\"stWidgetLabel\"]');"
        " const t = s.querySelector('[role=\"slider\"]'); const i = s.querySelector('input');"
        " const v = s.querySelector('[data-testid=\"stSliderThumbValue\"]');"
        " return [l ? l.innerText.trim() : '', (t && t.getAttribute('aria-valuenow'))"
        "         || (i && i.value) || (v && v.innerText) || null]; })")


def slider_value(page, title: str) -> float:
    """The value of the γ slider labelled ``title`` (its thumb's ``aria-valuenow``)."""
    found = [v for label, v in sliders(page) if label == title]
    assert len(found) == 1 and found[0] is not None, (title, sliders(page))
    return float(found[0])


def at_rest(page, titles: list[str], timeout_s: float = 60) -> None:
    """Wait until no script run is going and each slider of ``titles`` is on the page exactly
    once, stale ones aside (for 3 looks in a row)."""
    import time

    deadline, quiet = time.time() + timeout_s, 0
    while time.time() < deadline:
        busy = page.locator('[data-testid="stStatusWidget"]').count() > 0
        labels = [label for label, _ in sliders(page)]
        ok = not busy and all(labels.count(t) == 1 for t in titles)
        quiet = quiet + 1 if ok else 0
        if quiet >= 3:
            return
        page.wait_for_timeout(300)
    raise AssertionError(f"the page did not come to rest with one slider each of {titles}: "
                         f"{sliders(page)}")


def shown_gamma(page, method: str) -> float | None:
    """The γ the Fine-tune page's results table shows for ``method`` (its label), or None."""
    for row in table_rows(page, 0):
        if row and row[0] == method:
            try:
                return float(row[1])
            except (IndexError, ValueError):
                return None
    return None


def wait_for(predicate, timeout_s: float, page, what: str):
    import time

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        page.wait_for_timeout(300)
    raise AssertionError(f"timed out waiting for {what}")


# ---------------------------------------------------------------- the bundled example
def test_sliders_follow_the_new_fit_and_tables_fit(server, browser, shots):
    from nudge_core import registry

    m_label, n_label = (registry.label(m) for m in registry.gamma_methods())
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(server + "/finetune", timeout=60_000)
    page.locator(METRIC).first.wait_for(timeout=120_000)
    cancel = page.get_by_role("button", name="Cancel")
    if cancel.count():  # the adaptor's background run: not needed here, and it takes the cores
        cancel.click()
    settle(page)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)

    # defect 2: each test-NDCG curve is sampled on its own panel's visible γ axis
    panels = page.evaluate(
        "() => { const gd = document.querySelector('.js-plotly-plot'); const L = gd._fullLayout;"
        " return gd._fullData.filter(t => (t.name || '').endsWith('test NDCG@10')).map(t => {"
        "  const ax = L['xaxis' + (t.xaxis === 'x' ? '' : t.xaxis.slice(1))];"
        "  const xs = Array.from(t.x || []);"
        "  return {name: t.name, range: ax.range, n: xs.length,"
        "          inside: xs.filter(x => x >= ax.range[0] && x <= ax.range[1]).length}; }); }")
    assert len(panels) == 2, panels  # one test curve per γ method (the toggle is on by default)
    for p in panels:
        assert p["inside"] >= 50, p
    check(page, shots, "defects-01-finetune-automatic")

    # defect 1: fix NUDGE-N's γ at 0.05 in the form and Fit: its slider and numbers follow
    titles = [f"{lab} γ" for lab in (m_label, n_label)]
    at_rest(page, titles)
    before = slider_value(page, f"{n_label} γ")
    assert abs(before - 0.05) > 1e-6, before  # else the check below could not fail
    page.locator('[data-testid="stRadio"]').filter(has_text=f"{n_label} γ") \
        .get_by_text("fixed", exact=True).click()
    box = page.get_by_role("spinbutton", name=re.compile(f"^fixed {n_label} γ"))
    box.fill("0.05")
    box.press("Tab")
    page.get_by_role("button", name="Fit").click()
    wait_for(lambda: (g := shown_gamma(page, n_label)) is not None and abs(g - 0.05) < 1e-9,
             120, page, f"the table to show {n_label} γ = 0.05")
    settle(page)
    cancel = page.get_by_role("button", name="Cancel")
    if cancel.count():
        cancel.click()
        settle(page)
    at_rest(page, titles)
    table_gamma = {lab: shown_gamma(page, lab) for lab in (m_label, n_label)}
    values = {lab: slider_value(page, f"{lab} γ") for lab in (m_label, n_label)}
    deltas = page.evaluate("() => [...document.querySelectorAll('[data-testid=\"stMetricDelta\"]')]"
                           ".filter(d => !d.closest('[data-stale=\"true\"]')).map(d => d.innerText)")
    check(page, shots, "defects-02-finetune-fixed-n")
    assert table_gamma[n_label] == pytest.approx(0.05, abs=1e-9)
    for lab in (m_label, n_label):
        assert values[lab] == pytest.approx(table_gamma[lab], rel=1e-3, abs=1e-6), (values, table_gamma)
    assert len(deltas) == 4 and all(re.fullmatch(r"[+-]0\.0000 vs chosen γ", d.strip())
                                    for d in deltas), deltas
    assert f"{n_label} at γ = 0.05" in page.locator('[data-testid="stApp"]').inner_text()

    # defect 14: the metrics table reaches MRR without scrolling; the top-10 texts get the width
    go(page, "3 · Results")
    page.get_by_text("Biggest wins and losses").wait_for(timeout=120_000)
    settle(page)
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.scroll_into_view_if_needed()
    scroll = grid.evaluate("e => { const s = e.querySelector('.dvn-scroller');"
                           " return s && [s.scrollWidth, s.clientWidth]; }")
    columns = table_columns(page, 0)
    assert columns and any(t.startswith("mrr") for t, _ in columns), columns
    assert scroll is not None and scroll[0] <= scroll[1] + 1, (scroll, columns)
    frames = page.locator('[data-testid="stDataFrame"]')
    tops = [table_columns(page, i) for i in range(frames.count())]
    tops = [dict(c) for c in tops if c and {"record", "text"} <= {t for t, _ in c}]
    assert len(tops) == 2, tops  # before and after
    for widths in tops:
        assert widths["text"] > widths["record"], widths
    check(page, shots, "defects-03-results")
    page.close()


# ---------------------------------------------------------------- uploads
def loose_upload(tmp: Path, n_records: int, seed: int, dtype) -> list[dict]:
    """A tiny valid dataset as the five loose files of ``LOOSE`` (corpus stored as ``dtype``)."""
    from synthetic import make_arrays, write_dataset

    corpus, queries, qrels = make_arrays(n_records=n_records, n_queries=60, seed=seed, noise=0.5)
    folder = tmp / f"data{seed}"
    write_dataset(folder, corpus.astype(dtype), queries, qrels, texts=False)
    emb = folder / "emb" / "toy"
    paths = [emb / "corpus.npy", emb / "queries.npy", emb / "corpus_ids.txt",
             emb / "query_ids.txt", folder / "qrels" / "test.tsv"]
    return [{"name": p.name, "mimeType": "application/octet-stream", "buffer": p.read_bytes()}
            for p in paths]


def dataset_uploader(page):
    return page.locator('[data-testid="stFileUploader"]').filter(has_text="Dataset files") \
        .locator('input[type="file"]')


def uploaded_caption(page) -> str | None:
    caption = page.locator('[data-testid="stCaptionContainer"]').filter(has_text="Uploaded:")
    return caption.first.inner_text() if caption.count() else None


def test_uploads_name_files_as_uploaded_and_replace_each_other(server, browser, shots, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(server, timeout=60_000)
    page.get_by_text("Validation report").wait_for(timeout=120_000)
    settle(page)
    page.get_by_text("Upload", exact=True).first.click()
    settle(page)

    # defect 7: a float16 corpus is noted under the name it was uploaded as; no server path shown
    dataset_uploader(page).set_input_files(files=loose_upload(tmp_path, 150, 1, np.float16))
    page.get_by_text("150 records").first.wait_for(timeout=60_000)
    settle(page)
    notes = page.locator('[data-testid="stAlert"]').all_inner_texts()
    assert any(re.search(r"(^|\s)corpus\.npy: converted float16 to float32", n) for n in notes), notes
    text = page_text(page)
    leaks = [s for s in ("/tmp/", "nudge-session", "upload-", tempfile.gettempdir() + "/") if s in text]
    assert not leaks, (leaks, notes)
    first = uploaded_caption(page)
    assert first is not None and all(f"{n}" in first for n in LOOSE), first
    check(page, shots, "defects-04-upload-float16")

    # defect 9: a second drop on the same uploader replaces the first files
    dataset_uploader(page).set_input_files(files=loose_upload(tmp_path, 120, 2, np.float32))
    page.get_by_text("120 records").first.wait_for(timeout=60_000)
    settle(page)
    text = page_text(page)
    assert "look like" not in text and "both '" not in text, text[:3000]
    assert "converted float16" not in text  # the first upload's note went with its files
    second = uploaded_caption(page)
    assert second is not None and all(second.count(n) == 1 for n in LOOSE), second
    assert page.locator('[data-testid="stFileUploaderFile"]').count() == 0
    check(page, shots, "defects-05-upload-replaced")

    # ... and "Clear the upload" empties it: the bundled example is back, no file is listed
    page.get_by_role("button", name="Clear the upload").click()
    settle(page)
    page.get_by_text("120 records").first.wait_for(state="detached", timeout=30_000)
    if page.get_by_text("Dataset files").count() == 0:  # back on the bundled example: look again
        page.get_by_text("Upload", exact=True).first.click()
        settle(page)
    assert uploaded_caption(page) is None
    assert page.locator('[data-testid="stFileUploaderFile"]').count() == 0
    assert "120 records" not in page_text(page)
    check(page, shots, "defects-06-upload-cleared")
    page.close()
