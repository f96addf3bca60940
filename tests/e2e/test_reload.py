"""Browser test: a reload keeps the session's choices (they travel in the page address).

A reload starts a new Streamlit session with fresh state; the split seed chosen on the Data page
and a Fine-tune setting must still be in force after it, on the page that was open, and the fit
of those settings must be found again, not redone (explorer_app/permalink.py, explorer_app/jobs.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from browser_support import CHROMIUM, check, go, settle

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")]


@pytest.fixture(scope="module", autouse=True)
def no_umap_warmup():
    """Set before the module's server starts: UMAP's background compile would compete for the cores."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NUDGE_NO_WARMUP", "1")
        yield


def sidebar(page) -> str:
    return page.locator('[data-testid="stSidebar"]').inner_text()


def test_a_reload_keeps_the_seed_and_the_gamma_and_finds_the_fit_again(server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server, timeout=60_000)
    settle(page)
    seed = page.get_by_label("Seed (permutation and k-means)")
    seed.fill("3")
    seed.press("Enter")
    settle(page)
    go(page, "2 · Fine-tune")
    page.get_by_text("fixed", exact=True).first.click()  # NUDGE-M γ: fixed (default 0.1)
    page.get_by_role("button", name="Fit").click()
    settle(page)
    page.get_by_text("NUDGE-M: γ = 0.1, fixed in the settings").first.wait_for(timeout=120_000)
    assert "seed 3" in sidebar(page)
    assert "s=" in page.url
    t0 = time.perf_counter()
    page.reload()
    page.get_by_text("NUDGE-M: γ = 0.1, fixed in the settings").first.wait_for(timeout=120_000)
    print(f"\nTIMING reload until the fixed-γ caption: {time.perf_counter() - t0:.2f} s")
    settle(page)
    assert "seed 3" in sidebar(page), sidebar(page)
    check(page, shots, "reload-01-finetune-after-reload")
    # other pages, then a reload: the address is written again after each move (the browser
    # clears it on navigation; a browser walk once lost the choices this way)
    for title in ("5 · Movement", "1 · Data", "3 · Results"):
        go(page, title)
        page.wait_for_timeout(1500)
        assert "s=" in page.url, (title, page.url)
    page.reload()
    page.get_by_role("heading", name="3 · Results").first.wait_for(timeout=120_000)
    settle(page)
    assert "seed 3" in sidebar(page), sidebar(page)
    page.close()
