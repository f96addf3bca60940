"""Runs side by side: a run's summary numbers pinned under a label, tables and files across runs.

:func:`pin_run` keeps, from an :class:`~nudge_core.experiment.ExperimentResult`, only what a
comparison shows (the run spec as JSON, which data and split it ran on, and per method γ, mean
test / OOD metrics, the comparison with no fine-tuning and the fit time): a few kilobytes, no
arrays, so a session can hold several pins without holding their fitted indexes.
:func:`long_rows` is one long table (run × method × metric), :func:`summary_rows` one row per
(run, method); :func:`comparison_json`, :func:`comparison_csv` and :func:`reproduce_script` are
the downloadable files. :func:`like_for_like` says when pinned runs are not comparable number for
number (different data, test queries or OOD queries).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .data import Dataset
from .experiment import COMPARED, ExperimentResult
from .exports import reproduce_command
from .runspec import RunSpec
from .splits import Split

#: The comparison columns carried by a metric row of :func:`long_rows`.
INTERVAL = ("delta", "ci_low", "ci_high", "p_value")
#: Columns of :func:`long_rows` (and of the CSV), in order.
LONG_COLUMNS = ("run", "dataset", "split", "method", "part", "metric", "value") + INTERVAL


@dataclass(frozen=True)
class MethodSummary:
    """One method of a pinned run: its γ (None for a method without one), fit time in seconds,
    mean test metrics (``{"ndcg@10": …}``, every family@k), OOD ones (None without an OOD set) and
    the paired comparison with no fine-tuning per compared metric (``{"ndcg@10": {"delta",
    "ci_low", "ci_high", "p_value", "wins", …}}``; empty for the reference itself)."""

    gamma: float | None
    fit_seconds: float
    metrics: dict[str, float]
    compared_to_none: dict[str, dict[str, float]] = field(default_factory=dict)
    ood_metrics: dict[str, float] | None = None
    ood_compared_to_none: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class PinnedRun:
    """A run's summary under a user's ``label`` (see the module docstring).

    ``spec``: :meth:`RunSpec.to_json` of what ran; ``fingerprint``: :func:`dataset_fingerprint`;
    ``split`` the split's description and ``split_fingerprint`` a hash of its query ids (train,
    validation, test, OOD), so two pins on the same description but other queries are told
    apart; ``ood`` the OOD source (None without) and ``ood_fingerprint`` a hash of its query ids;
    ``seconds`` the whole run's wall time; ``methods`` in the run's order."""

    label: str
    spec: dict
    dataset: str
    model: str
    fingerprint: str
    split: str
    split_fingerprint: str
    split_sizes: dict[str, int]
    methods: dict[str, MethodSummary]
    ood: str | None = None
    ood_fingerprint: str | None = None
    seconds: float = 0.0

    def run_spec(self) -> RunSpec:
        return RunSpec.from_json(self.spec)

    def relabel(self, label: str) -> "PinnedRun":
        return replace(self, label=label)

    def to_json(self) -> dict:
        """Plain JSON (non-finite numbers, e.g. an undefined p-value, become null)."""
        return _finite(asdict(self))

    @classmethod
    def from_json(cls, obj: dict) -> "PinnedRun":
        methods = {name: MethodSummary(**m) for name, m in obj["methods"].items()}
        return cls(**{**obj, "methods": methods})


#: Rows hashed at a time (bounded memory for memory-mapped and sharded corpora).
HASH_ROWS = 65536


def _sha(*parts) -> str:
    """16 hex digits of SHA-256 over ``parts`` (bytes, or iterables of bytes), each part prefixed
    by its length so that moving bytes between parts changes the hash."""
    h = hashlib.sha256()
    for part in parts:
        chunks = [part] if isinstance(part, (bytes, memoryview)) else part
        size, sub = 0, hashlib.sha256()
        for chunk in chunks:
            size += len(chunk)
            sub.update(chunk)
        h.update(size.to_bytes(8, "little"))
        h.update(sub.digest())
    return h.hexdigest()[:16]


def _text(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")


def _rows(array):
    """``array``'s rows as float32 bytes, :data:`HASH_ROWS` rows at a time (an ndarray, a memmap
    or a sharded corpus: anything with ``len`` and row slicing)."""
    for start in range(0, len(array), HASH_ROWS):
        block = np.ascontiguousarray(array[start:start + HASH_ROWS], dtype=np.float32)
        yield memoryview(block).cast("B")


def dataset_fingerprint(ds: Dataset) -> str:
    """A 16-hex-digit hash of the dataset's content: record and query vectors (as float32, read
    in blocks of rows), their ids and every judgement. Names and file paths do not enter it, so
    the same data loaded from a folder or an upload hashes the same, and two datasets with one
    name do not."""
    return _sha(_rows(ds.corpus_emb), _rows(ds.query_emb), ds.corpus_ids.json_chunks(),
                ds.query_ids.json_chunks(), _text(ds.qrels))


def split_fingerprint(split: Split) -> str:
    """A hash of the split's query ids, part by part (train, val, test, OOD), in order."""
    return _sha(_text(split.to_json()))


def pin_run(result: ExperimentResult, label: str, fingerprint: str | None = None) -> PinnedRun:
    """``result``'s summary numbers under ``label``. ``fingerprint``: the dataset's
    :func:`dataset_fingerprint` when the caller already has it (it hashes every vector)."""
    methods = {}
    for name, res in result.methods.items():
        methods[name] = MethodSummary(
            gamma=None if res.gamma is None else float(res.gamma),
            fit_seconds=float(res.fit_seconds), metrics=dict(res.metrics),
            compared_to_none={m: dict(c) for m, c in res.comparison.items()},
            ood_metrics=None if res.ood_metrics is None else dict(res.ood_metrics),
            ood_compared_to_none={m: dict(c) for m, c in res.ood_comparison.items()})
    ood_print = None if result.ood is None else _sha(_text(result.ood.ids))
    return PinnedRun(label=label, spec=result.spec.to_json(), dataset=result.dataset.name,
                     model=result.dataset.model,
                     fingerprint=fingerprint or dataset_fingerprint(result.dataset),
                     split=result.split.description, split_fingerprint=split_fingerprint(result.split),
                     split_sizes=result.split.sizes(), methods=methods, ood=result.ood_source,
                     ood_fingerprint=ood_print, seconds=float(result.seconds))


# ---------------------------------------------------------------- tables
def long_rows(runs: list[PinnedRun]) -> list[dict]:
    """One row per (run, method, part, metric), columns :data:`LONG_COLUMNS`.

    ``part`` is "fit" (metrics ``gamma``, ``fit_seconds``), "test" or "ood" (every mean metric);
    a test / OOD row of a compared metric also carries Δ vs no fine-tuning with its 95% interval
    and p-value (None elsewhere)."""
    rows = []
    for run in runs:
        head = {"run": run.label, "dataset": run.dataset, "split": run.split}
        for name, m in run.methods.items():
            def row(part, metric, value, comp=None):
                c = comp or {}
                rows.append({**head, "method": name, "part": part, "metric": metric,
                             "value": value, **{k: c.get(k) for k in INTERVAL}})
            row("fit", "gamma", m.gamma)
            row("fit", "fit_seconds", m.fit_seconds)
            for part, values, comps in (("test", m.metrics, m.compared_to_none),
                                        ("ood", m.ood_metrics, m.ood_compared_to_none)):
                for metric, value in (values or {}).items():
                    row(part, metric, value, comps.get(metric))
    return rows


def summary_rows(runs: list[PinnedRun], metric: str = "ndcg@10") -> list[dict]:
    """One row per (run, method): γ, test NDCG/recall/MRR@10, OOD ``metric`` (None without an
    OOD set), fit seconds and Δ``metric`` vs no fine-tuning with its 95% interval and p (None for
    the reference)."""
    rows = []
    for run in runs:
        for name, m in run.methods.items():
            comp = m.compared_to_none.get(metric, {})
            rows.append({"run": run.label, "method": name, "gamma": m.gamma,
                         **{k: m.metrics.get(k) for k in COMPARED},
                         f"ood {metric}": None if m.ood_metrics is None else m.ood_metrics.get(metric),
                         "fit_seconds": m.fit_seconds,
                         **{f"{k} {metric}" if k == "delta" else k: comp.get(k) for k in INTERVAL}})
    return rows


def like_for_like(runs: list[PinnedRun]) -> list[str]:
    """Why the pinned runs' numbers are not directly comparable (an empty list when they are):
    other data (content fingerprint), other split (query ids), other OOD queries (among the runs
    that have an OOD set)."""
    def groups(pinned: list[PinnedRun], key) -> str | None:
        """The runs grouped by ``key`` ("A, B; C"), or None when they all share one value."""
        seen: dict = {}
        for run in pinned:
            seen.setdefault(key(run), []).append(run.label)
        return None if len(seen) < 2 else "; ".join(", ".join(labels) for labels in seen.values())

    data = groups(runs, lambda r: r.fingerprint)
    if data:
        names = ", ".join(sorted({f"{r.dataset} ({r.model})" for r in runs}))
        return [f"The runs used different data ({names}; same data: {data}): their metrics are "
                "over different records and queries, not like for like."]
    notes = []
    splits = groups(runs, lambda r: r.split_fingerprint)
    if splits:
        notes.append(f"The runs used different query splits (same split: {splits}): their test "
                     "metrics are over different test queries, not like for like.")
    ood = groups([r for r in runs if r.ood_fingerprint is not None], lambda r: r.ood_fingerprint)
    if ood:
        notes.append(f"The runs used different OOD query sets (same set: {ood}): their OOD "
                     "columns are not like for like.")
    return notes


# ---------------------------------------------------------------- files
def comparison_json(runs: list[PinnedRun]) -> bytes:
    """Every pinned run (:meth:`PinnedRun.to_json`), the comparability notes, and each run's
    reproducing command (writing ``run-<label>.json``)."""
    out = {"runs": [run.to_json() for run in runs], "not_like_for_like": like_for_like(runs),
           "commands": {run.label: command(run) for run in runs}}
    return json.dumps(out, indent=1, ensure_ascii=False).encode("utf-8")


def comparison_csv(runs: list[PinnedRun]) -> bytes:
    """:func:`long_rows` as CSV (empty cells for None)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(LONG_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(_finite(long_rows(runs)))
    return buf.getvalue().encode("utf-8")


def result_file(run: PinnedRun) -> str:
    """The results file a pinned run's command writes: ``run-<label>.json`` (label made safe)."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in run.label) or "run"
    return f"run-{safe}.json"


def command(run: PinnedRun, spec: RunSpec | None = None) -> str:
    """The CLI command that reruns ``run`` (:func:`exports.reproduce_command` of its spec, or of
    ``spec`` when the caller adjusts it, e.g. for a downloaded split file)."""
    return reproduce_command(spec or run.run_spec(), out=result_file(run))


def reproduce_script(runs: list[PinnedRun], specs: list[RunSpec] | None = None) -> bytes:
    """A POSIX shell script running every pinned run's command in turn (``specs``: adjusted
    specs, one per run, as for :func:`command`)."""
    lines = ["#!/bin/sh", "# NUDGE Explorer: the pinned runs, one command each.", "set -e", ""]
    for i, run in enumerate(runs):
        spec = specs[i] if specs is not None else None
        lines.append(f"# run {run.label}: {run.dataset} ({run.model}), {run.split}")
        if (spec or run.run_spec()).split.mode == "file":
            lines.append("# needs its split file next to this script (Export page, while the run "
                         "is current)")
        lines.append(command(run, spec))
        lines.append("")
    return "\n".join(lines).encode("utf-8")


def _finite(obj):
    """``obj`` with non-finite floats replaced by None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    return obj
