#!/usr/bin/env python
"""The Fine-tune page as a user feels it: first visit and γ slider moves, in headless Chromium.

Starts ``streamlit run app.py`` (a fresh server: cold caches, the bundled example, UMAP's
background warm-up on as in production unless ``--no-warmup``), opens the Fine-tune page at
1400×900 and measures, wall clock in the browser:

* **first visit**: from navigation until NUDGE's numbers show (the first re-score metric), and
  until the slow methods (the adaptor, on by default, fitted in the background) are merged in;
* **slider moves** (``--moves``, each a click at another place of NUDGE-M's γ slider): until the
  metrics beside the chart change, and until the chart's "slider γ" mark has moved.

Prints a table and writes JSON; nothing is asserted (targets from issue 11: ≤ 0.3 s for the
numbers, ≤ 1 s for the chart). Needs /usr/bin/chromium and playwright (never downloads a browser).

    python benchmarks/bench_app_timing.py --moves 8
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
METRIC = '[data-testid="stMetric"]'
THUMB = '[data-testid="stSlider"] input[type="range"]'
RUNNING = "still running…"


def start_server(warmup: bool) -> tuple[subprocess.Popen, str, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    if not warmup:
        env["NUDGE_NO_WARMUP"] = "1"
    log = tempfile.NamedTemporaryFile(prefix="bench-app-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless",
                             "true", "--server.port", str(port), "--server.address", "127.0.0.1"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                return proc, url, log.name
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"streamlit did not start; log: {log.name}")


def watch(page, before_numbers, before_marks, timeout: float = 60) -> tuple[float | None, float | None]:
    """Seconds until the metric values change and until the chart's slider mark changes."""
    t0 = time.perf_counter()
    numbers = chart = None
    while time.perf_counter() - t0 < timeout and (numbers is None or chart is None):
        now_numbers, now_marks = state(page)
        elapsed = time.perf_counter() - t0
        if numbers is None and now_numbers != before_numbers:
            numbers = elapsed
        if chart is None and now_marks != before_marks:
            chart = elapsed
        page.wait_for_timeout(10)
    return numbers, chart


def state(page) -> list:
    """[metric values shown, the chart's "slider γ=" marks]."""
    return page.evaluate(
        "() => [[...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
        ".map(e => e.innerText), [...document.querySelectorAll('.js-plotly-plot text')]"
        ".map(t => t.textContent).filter(t => t.startsWith('slider γ='))]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moves", type=int, default=8)
    ap.add_argument("--no-warmup", action="store_true", help="switch UMAP's background warm-up off")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_app_timing.json")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    proc, url, log = start_server(warmup=not args.no_warmup)
    out = {"warmup": not args.no_warmup, "cpus": os.cpu_count(),
           "load_average": os.getloadavg()[0]}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            t0 = time.perf_counter()
            page.goto(url + "/finetune", timeout=120_000)
            page.locator(METRIC).first.wait_for(timeout=300_000)
            out["first_visit_nudge_s"] = time.perf_counter() - t0
            out["slow_methods_in_background"] = page.get_by_text(RUNNING).count() > 0
            page.locator(".js-plotly-plot").first.wait_for(timeout=300_000)
            out["first_visit_chart_s"] = time.perf_counter() - t0
            if out["slow_methods_in_background"]:
                page.get_by_text(RUNNING).first.wait_for(state="detached", timeout=600_000)
                out["first_visit_everything_s"] = time.perf_counter() - t0
            page.locator('[data-testid="stSlider"]').first.evaluate(
                "e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(1000)
            track = page.locator('[data-testid="stSlider"]').first.bounding_box()
            moves = []
            for i in range(args.moves):
                where = 0.15 + 0.7 * ((i * 0.37) % 1.0)  # spread over the track, each one new
                before = state(page)
                page.mouse.click(track["x"] + where * track["width"],
                                 track["y"] + track["height"] - 12)
                numbers, chart = watch(page, *before)
                moves.append({"position": round(where, 3), "numbers_s": numbers, "chart_s": chart,
                              "gamma": float(page.locator(THUMB).first.input_value())})
                page.wait_for_timeout(700)  # let the page settle before the next move
            out["slider_moves"] = moves
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    for what in ("numbers_s", "chart_s"):
        values = [m[what] for m in out["slider_moves"] if m[what] is not None]
        out[f"slider_{what.replace('_s', '')}_median_s"] = statistics.median(values) if values else None
        out[f"slider_{what.replace('_s', '')}_max_s"] = max(values) if values else None
    print(f"server log: {log}; load average at start {out['load_average']:.1f} on {out['cpus']} CPUs")
    print(f"{'measure':55s} {'seconds':>8s}")
    for key, name in (("first_visit_nudge_s", "first Fine-tune visit until NUDGE's numbers"),
                      ("first_visit_chart_s", "first Fine-tune visit until the γ chart"),
                      ("first_visit_everything_s", "first visit until the adaptor is merged in"),
                      ("slider_numbers_median_s", "slider move until the numbers change (median)"),
                      ("slider_numbers_max_s", "slider move until the numbers change (max)"),
                      ("slider_chart_median_s", "slider move until the chart's mark moved (median)"),
                      ("slider_chart_max_s", "slider move until the chart's mark moved (max)")):
        value = out.get(key)
        print(f"{name:55s} {'-' if value is None else f'{value:8.3f}':>8s}")
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
