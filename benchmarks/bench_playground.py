#!/usr/bin/env python
"""Playground engine time per slider move: positions + rankings of every query, per preset.

A slider move on the Playground page refits at a fixed γ (:func:`playground.positions`) and
re-ranks every query (:func:`playground.rankings`); this times that engine part (median over
``--repeats`` moves at random γ) for every preset and for the largest random toy (200 records,
200 queries), in 2-D and 3-D; and, apart, the drawing part: building the page's plotly figure
(with the 2-D click rings) and serialising it as Streamlit does. Prints a table, writes JSON;
nothing is asserted (target: the engine part well under the page's 0.3 s budget for a re-draw).

    python benchmarks/bench_playground.py --repeats 30
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from explorer_app.geometry import add_click_rings, playground_figure
from nudge_core import registry
from nudge_core.playground import PRESETS, fit_at, preset, rankings

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_playground.json")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for dim in (2, 3):
        for name in PRESETS:
            kw = {"n_records": 200, "n_queries": 200} if name == "random" else {}
            toy = preset(name, dim, **kw)
            draw = []
            for gamma in rng.uniform(0, 4.0, max(3, args.repeats // 5)):
                moved = {m: fit_at(toy, m, gamma).embeddings_ for m in registry.gamma_methods()}
                t0 = time.perf_counter()
                fig = playground_figure(toy, moved, {m: gamma for m in moved})
                if dim == 2:
                    add_click_rings(fig)
                fig.to_json()
                draw.append(time.perf_counter() - t0)
            for method in registry.gamma_methods():
                high = min(registry.get(method).gamma.high, 4.0)
                times = []
                for gamma in rng.uniform(0, high, args.repeats):
                    t0 = time.perf_counter()
                    est = fit_at(toy, method, gamma)
                    for part in (toy.train, toy.val, toy.test, toy.ood):
                        if part is not None and len(part):
                            rankings(toy, est, part)
                    times.append(time.perf_counter() - t0)
                rows.append({"preset": name, "dim": dim, "method": method,
                             "records": toy.dataset.n_records,
                             "queries": len(toy.dataset.query_ids),
                             "median_ms": 1e3 * float(np.median(times)),
                             "max_ms": 1e3 * float(np.max(times)),
                             "figure_median_ms": 1e3 * float(np.median(draw))})
    print(f"{'preset':11}{'dim':>4}{'method':>9}{'records':>9}{'queries':>9}{'median ms':>11}{'max ms':>9}{'figure ms':>11}")
    for r in rows:
        print(f"{r['preset']:11}{r['dim']:>4}{r['method']:>9}{r['records']:>9}{r['queries']:>9}"
              f"{r['median_ms']:>11.2f}{r['max_ms']:>9.2f}{r['figure_median_ms']:>11.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"repeats": args.repeats, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
