"""Helpers of the browser tests: wait for a script run, check a page and shoot it, navigate."""

from __future__ import annotations

import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run"]

def settle(page, timeout: float = 120) -> None:
    """Wait until the script run finishes (the 'running' indicator is gone for a moment)."""
    page.wait_for_timeout(400)
    deadline = time.time() + timeout
    quiet = 0
    while time.time() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        quiet = 0 if running else quiet + 1
        if quiet >= 3:
            return
        page.wait_for_timeout(300)
    raise AssertionError("the app kept running")


def check(page, shots: Path, name: str) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()
    # Streamlit scrolls inside its main container: grow the viewport to the content, then shoot.
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll("
                           "'[data-testid=\"stMain\"], [data-testid=\"stAppViewContainer\"]')]"
                           ".map(e => e.scrollHeight), 1000)")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 40, 7000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})


def go(page, title: str, timeout: float = 120) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=timeout * 1000)
    settle(page, timeout)


def pick(page, label: str, nth_option: int) -> None:
    """Open the selectbox labelled ``label`` and choose its ``nth_option`` entry."""
    box = page.get_by_role("combobox", name=label, exact=True)
    box.scroll_into_view_if_needed()
    box.locator("xpath=..").get_by_role("button", name="Open").click()
    page.get_by_role("listbox", name=label).get_by_role("option").nth(nth_option).click()
    settle(page)


def plotly_traces(page, nth: int = 0) -> list[dict]:
    """The traces the ``nth`` plotly chart on the page draws (plotly.js's own ``gd._fullData``,
    where typed arrays sent as base64 are decoded): name, x, y (and z) of each."""
    return page.evaluate(
        "n => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .js-plotly-plot')][n]"
        "._fullData.map(t => ({name: t.name || '', x: Array.from(t.x || []), y: Array.from(t.y || []),"
        " z: Array.from(t.z || []), type: t.type || 'scatter'}))", nth)


def click_plot(page, x: float, y: float, nth: int = 0) -> None:
    """Click the ``nth`` 2-D plotly chart at data coordinates (x, y) (a real mouse click at the
    pixel plotly.js maps them to)."""
    px = page.evaluate(
        "([n, x, y]) => { const gd = [...document.querySelectorAll("
        "'[data-testid=\"stPlotlyChart\"] .js-plotly-plot')][n]; const L = gd._fullLayout;"
        " const r = gd.getBoundingClientRect();"
        " return [r.left + L._size.l + L.xaxis.l2p(x), r.top + L._size.t + L.yaxis.l2p(y)]; }",
        [nth, x, y])
    page.mouse.click(px[0], px[1])
