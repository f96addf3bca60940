"""The app never reaches for the internet: every page of the bundled example, visited in headless
Chromium, makes no request outside the server and logs no failed-load errors in the console.

Streamlit fetched the favicon of a ``:material/...:`` page icon from fonts.gstatic.com on every
page change (13 ``ERR_NAME_NOT_RESOLVED`` console errors on an offline machine); an emoji icon is
drawn locally. External requests are aborted and recorded here, so the test fails the same way
with or without a network. Pages are not waited on until their fits finish (the check is about
what the page loads, not its numbers), which keeps the test well under a minute.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from browser_support import CHROMIUM

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")]

LOCAL = {"127.0.0.1", "localhost"}


def test_no_page_reaches_the_internet(server, browser):
    from explorer_app.session import PAGES

    external: list[str] = []
    console: list[str] = []
    failed: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()

    def route(r) -> None:
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:")) or host in LOCAL:
            r.continue_()
        else:  # recorded, and never sent: the test behaves the same offline and online
            external.append(r.request.url)
            r.abort("namenotresolved")

    page.route("**/*", route)
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}")
            if urlparse(r.url).hostname not in LOCAL else None)
    t0 = time.perf_counter()
    page.goto(server, timeout=60_000)
    page.get_by_role("heading", name="1 · Data").first.wait_for(timeout=60_000)
    for _, title, url in PAGES[1:]:
        page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
        page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
        page.wait_for_timeout(1500)  # let the page's elements (charts, icons) load what they load
    print(f"visited {len(PAGES)} pages in {time.perf_counter() - t0:.1f} s")
    context.close()
    assert external == [], external
    assert failed == [], failed
    assert not [c for c in console if "ERR_NAME_NOT_RESOLVED" in c or "ERR_INTERNET_DISCONNECTED" in c
                or "ERR_CONNECTION" in c], console
