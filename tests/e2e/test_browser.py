"""End to end: `streamlit run app.py` driven by Playwright in Debian's headless Chromium.

Walks the whole flow on the bundled example, uploads a small zip, uploads a broken file, checks
that no exception box appears on any page, and saves a screenshot of every step (to
$NUDGE_SCREENSHOTS if set, else a temporary folder printed in the test output).
Needs /usr/bin/chromium (`apt-get install chromium`); never `playwright install`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from browser_support import CHROMIUM, check, go, pick, settle

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")]


def small_zip() -> bytes:
    from synthetic import make_arrays, write_dataset, zip_folder

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "toy"
        write_dataset(folder, *make_arrays(n_records=150, n_queries=90, noise=0.5))
        return zip_folder(folder)


def test_deep_link_into_a_fresh_server(server, browser, shots):
    """Runs first: a fresh server asked for /results still runs app.py (navigation, session)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server + "/results", timeout=60_000)
    page.get_by_text("Biggest wins and losses").wait_for(timeout=180_000)
    settle(page)
    nav = page.locator('[data-testid="stSidebarNav"]')
    assert nav.get_by_text("3 · Results", exact=True).count() == 1
    # not Streamlit's legacy navigation built from file names ("app", "data", "results", ...)
    assert nav.get_by_text("app", exact=True).count() == 0
    assert nav.get_by_text("results", exact=True).count() == 0
    check(page, shots, "00-deep-link-results")
    page.close()


def test_whole_flow(server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server, timeout=60_000)
    page.get_by_text("Validation report").wait_for(timeout=120_000)
    settle(page)
    check(page, shots, "01-data")

    page.get_by_text("Dataset on the server", exact=True).click()  # a choice among allowed roots, no path field
    settle(page)
    assert page.locator('[data-testid="stTextInput"]').count() == 0
    check(page, shots, "01b-data-server")
    page.get_by_text("Bundled example", exact=True).click()
    settle(page)

    page.get_by_text("k-means split (2 clusters of training queries)").click()
    settle(page)
    page.get_by_text("k-means OOD").first.wait_for(timeout=60_000)
    check(page, shots, "02-data-kmeans")

    go(page, "2 · Fine-tune", 240)
    page.get_by_text("Re-score at any γ").wait_for(timeout=240_000)
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=60_000)
    check(page, shots, "03-finetune")

    go(page, "3 · Results")
    page.get_by_text("Biggest wins and losses").wait_for(timeout=60_000)
    check(page, shots, "04-results")
    pick(page, "Query", 2)
    page.get_by_text("Top-10 after").wait_for(timeout=60_000)
    check(page, shots, "04b-results-query")

    go(page, "4 · Out-of-distribution")
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=60_000)
    check(page, shots, "05-ood")

    go(page, "6 · Sensitivity")
    page.locator('[data-testid="stPlotlyChart"]').nth(1).wait_for(timeout=120_000)
    check(page, shots, "06-sensitivity")

    go(page, "7 · Export")
    page.get_by_text("nudge-explorer run").first.wait_for(timeout=60_000)
    check(page, shots, "07-export")

    # UMAP compiles on first use (about a minute or two on 2 cores); the page shows progress.
    go(page, "5 · Movement", 300)
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=300_000)
    settle(page, 300)
    check(page, shots, "08-movement")
    pick(page, "Test query", 3)
    page.get_by_text("top-10 after").first.wait_for(timeout=60_000)
    check(page, shots, "08b-movement-query")

    go(page, "1 · Data")
    page.get_by_text("Upload", exact=True).click()
    settle(page)
    page.locator('input[type="file"]').first.set_input_files(
        files=[{"name": "toy.zip", "mimeType": "application/zip", "buffer": small_zip()}])
    page.get_by_text("upload: toy").first.wait_for(timeout=60_000)
    settle(page)
    check(page, shots, "09-upload-zip")
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert "upload: toy" in sidebar.inner_text()  # the summary follows the upload in the same run

    go(page, "3 · Results")
    page.get_by_text("Biggest wins and losses").wait_for(timeout=120_000)
    check(page, shots, "10-results-upload")

    go(page, "1 · Data")
    page.locator('input[type="file"]').first.set_input_files(
        files=[{"name": "broken.zip", "mimeType": "application/zip", "buffer": b"not a zip"}])
    settle(page)
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="broken.zip")
    alert.first.wait_for(timeout=60_000)
    assert "broken.zip" in alert.first.inner_text()
    check(page, shots, "11-broken-upload")
    page.close()
