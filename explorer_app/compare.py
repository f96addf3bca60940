"""The Compare page's support: this session's pinned runs, their table, chart and files.

Pins live in ``st.session_state`` (:data:`PINS_KEY`, a list of
:class:`~nudge_core.comparison.PinnedRun`), so each browser session has its own and none sees
another's; a pin holds summary numbers only (no arrays): about 9 KB of JSON each on the
bundled example.
Every number comes from :mod:`nudge_core.comparison`; this module labels, formats and draws.
"""

from __future__ import annotations

import string

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from nudge_core import registry
from nudge_core.comparison import (PinnedRun, comparison_csv, comparison_json, pin_run,
                                   reproduce_script, summary_rows)
from nudge_core.registry import colour, label

from . import runs
from .figures import figures_html

PINS_KEY = "compare_pins"
#: At most this many pins per session (a table and a chart still readable side by side).
MAX_PINS = 6
MAX_LABEL = 40


def pins() -> list[PinnedRun]:
    """This session's pinned runs, in pinning order."""
    return st.session_state.setdefault(PINS_KEY, [])


def next_label(pinned: list[PinnedRun]) -> str:
    """The first capital letter no pin is labelled with (A, then B, …)."""
    used = {p.label for p in pinned}
    return next(c for c in string.ascii_uppercase if c not in used)


def _same_run(a: PinnedRun, b: PinnedRun) -> bool:
    """Same data, split, OOD set, settings and methods (a run pinned while a slow method was
    still fitting in the background differs from the same run pinned once it is done)."""
    return (a.fingerprint, a.split_fingerprint, a.ood_fingerprint, a.spec, list(a.methods)) == \
        (b.fingerprint, b.split_fingerprint, b.ood_fingerprint, b.spec, list(b.methods))


def add_pin(result) -> tuple[PinnedRun | None, str | None]:
    """Pin ``result`` (an :class:`~nudge_core.experiment.ExperimentResult`) under the next free
    label: (the pin, None), or (None, why not) when :data:`MAX_PINS` are pinned or the same run
    (same data, split, OOD set and settings) already is."""
    pinned = pins()
    if len(pinned) >= MAX_PINS:
        return None, f"At most {MAX_PINS} runs can be pinned; remove one first."
    pin = pin_run(result, next_label(pinned))  # hashes the data: ~0.03 s on SciFact
    for other in pinned:
        if _same_run(pin, other):
            return None, (f"This run (same data, split and settings) is already pinned as "
                          f"{other.label}. Change a setting on the Fine-tune or Data page first.")
    pinned.append(pin)
    return pin, None


def rename(old: str, new: str) -> str | None:
    """Relabel pin ``old`` as ``new``; None, or why not (empty, too long, taken)."""
    new = new.strip()
    pinned = pins()
    if not new:
        return "A pin's name cannot be empty."
    if len(new) > MAX_LABEL:
        return f"A pin's name has at most {MAX_LABEL} characters; {new[:20]!r}… has {len(new)}."
    if new != old and any(p.label == new for p in pinned):
        return f"A pin is already named {new!r}; choose another name."
    pinned[:] = [p.relabel(new) if p.label == old else p for p in pinned]
    return None


def remove(which: str | None = None) -> None:
    """Unpin the run labelled ``which`` (every run when None)."""
    pinned = pins()
    pinned[:] = [] if which is None else [p for p in pinned if p.label != which]


# ---------------------------------------------------------------- views
def settings_text(spec) -> str:
    """A :class:`RunSpec`'s settings in words: each method with its γ setting and any
    non-default parameter or objective."""
    parts = []
    for m in spec.methods:
        if m.name == registry.REFERENCE:
            continue
        gamma = "automatic" if m.gamma.mode == "auto" else str(m.gamma)
        bits = [] if registry.get(m.name).gamma is None else [f"γ {gamma}"]
        bits += [f"{p.name} {m.params[p.name]}" for p in registry.get(m.name).params
                 if m.params[p.name] != p.default]
        if m.objective:
            bits.append(f"objective {m.objective}")
        parts.append(label(m.name) + (f" ({', '.join(bits)})" if bits else ""))
    return "; ".join(parts) or "no fine-tuning only"


def runs_table(pinned: list[PinnedRun]) -> pd.DataFrame:
    """One row per pin: settings, data, split, OOD set, whole-run seconds."""
    return pd.DataFrame([{"run": p.label, "settings": settings_text(p.run_spec()),
                          "data": f"{p.dataset} ({p.model})", "split": p.split,
                          "OOD": p.ood or "none", "run seconds": round(p.seconds, 2)}
                         for p in pinned])


def _interval(row: dict, metric: str) -> str:
    d = row[f"delta {metric}"]
    if d is None:
        return ""
    p = row["p_value"]
    return f"{d:+.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]" + \
        ("" if p is None or p != p else f", p={p:.2g}")


def table(pinned: list[PinnedRun], metric: str = "ndcg@10") -> pd.DataFrame:
    """Runs × methods: γ, test NDCG/Recall/MRR@10, OOD NDCG@10, fit seconds, Δ vs none (95%
    interval, p) — :func:`nudge_core.comparison.summary_rows`, labelled for the page."""
    rows = summary_rows(pinned, metric)
    return pd.DataFrame([{"run": r["run"], "method": label(r["method"]), "γ": r["gamma"],
                          "NDCG@10": r["ndcg@10"], "Recall@10": r["recall@10"],
                          "MRR@10": r["mrr@10"], "OOD NDCG@10": r[f"ood {metric}"],
                          "fit s": r["fit_seconds"],
                          "Δ NDCG@10 vs none [95% CI]": _interval(r, metric)} for r in rows])


def figure(pinned: list[PinnedRun], metric: str = "ndcg@10") -> go.Figure:
    """Grouped bars of test ``metric`` per run (x) and method (colour); a second panel with the
    OOD ``metric`` when any pin has an OOD set."""
    rows = summary_rows(pinned, metric)
    has_ood = any(r[f"ood {metric}"] is not None for r in rows)
    panels = [("test", metric)] + ([("OOD", f"ood {metric}")] if has_ood else [])
    shown = _metric_name(metric)
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True,
                        subplot_titles=[f"{part} {shown}" for part, _ in panels])
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for col, (part, key) in enumerate(panels, start=1):
        for m in methods:
            sel = [r for r in rows if r["method"] == m]
            fig.add_trace(go.Bar(
                x=[r["run"] for r in sel], y=[r[key] for r in sel], name=label(m),
                marker_color=colour(m), legendgroup=m, showlegend=col == 1,
                text=[None if r[key] is None else f"{r[key]:.3f}" for r in sel],
                textposition="inside", insidetextanchor="end",
                hovertemplate=f"run %{{x}}<br>{label(m)}<br>{part} {shown} %{{y:.4f}}<extra></extra>"),
                row=1, col=col)
    fig.update_layout(barmode="group", title=dict(text=f"{shown} by pinned run (x) and method",
                                                  x=0), height=440,
                      margin=dict(l=50, r=20, t=70, b=70),
                      legend=dict(orientation="h", yanchor="top", y=-0.08, x=0))
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text=shown, row=1, col=1)
    return fig


def _metric_name(metric: str) -> str:
    """"ndcg@10" -> "NDCG@10" (the names the tables use)."""
    family, _, k = metric.partition("@")
    return {"ndcg": "NDCG", "recall": "Recall", "mrr": "MRR"}.get(family, family) + "@" + k


def cli_specs(pinned: list[PinnedRun]):
    """Each pin's spec as the Export page's command runs it (:func:`runs.cli_spec`)."""
    return [runs.cli_spec(p.run_spec()) for p in pinned]


#: The Compare page's downloads: kind -> (button label, file name, MIME type).
DOWNLOADS = {"json": ("Comparison (JSON)", "nudge-comparison.json", "application/json"),
             "csv": ("Long table (CSV)", "nudge-comparison.csv", "text/csv"),
             "html": ("Chart (HTML)", "nudge-comparison.html", "text/html"),
             "sh": ("Commands (shell script)", "nudge-comparison.sh", "text/x-shellscript")}


def file_bytes(kind: str, pinned: list[PinnedRun]) -> bytes:
    """One download of :data:`DOWNLOADS`: the comparison JSON, the long CSV (run × method ×
    metric), the chart as one offline HTML file, or a shell script of each pin's command."""
    if kind == "json":
        return comparison_json(pinned)
    if kind == "csv":
        return comparison_csv(pinned)
    if kind == "html":
        return figures_html({"Pinned runs": figure(pinned)}, "NUDGE Explorer: pinned runs")
    if kind == "sh":
        return reproduce_script(pinned, cli_specs(pinned))
    raise KeyError(kind)
