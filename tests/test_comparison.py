"""Runs side by side (nudge_core.comparison): pins hold the result's summary numbers and no arrays,
tables across runs, the like-for-like check, and the files (JSON, CSV, reproducing script)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import shlex

import numpy as np
import pytest

from nudge_core import GammaSpec, MethodSettings, RunSpec, SplitSpec, cli, load_dataset, run_experiment
from nudge_core import comparison as cmp
from nudge_core.experiment import COMPARED
from nudge_core.runspec import load_run
from synthetic import make_arrays, write_dataset, write_toy


def _spec(folder, gamma_n, seed=0, ood=None) -> RunSpec:
    return RunSpec(str(folder), split=SplitSpec(seed=seed),
                   methods=(MethodSettings("nudge-m"),
                            MethodSettings("nudge-n", GammaSpec("fixed", value=gamma_n))), ood=ood)


def _run(spec: RunSpec):
    ds, split, ood = load_run(spec)
    return run_experiment(ds, split, spec, ood=ood)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_toy(tmp_path_factory.mktemp("cmp") / "toy", n_records=160, n_queries=100, seed=2)


@pytest.fixture(scope="module")
def results(folder):
    """Two runs on one split that differ only in NUDGE-N's fixed γ, and one on another split."""
    return {"A": _run(_spec(folder, 0.05)), "B": _run(_spec(folder, 0.2)),
            "S": _run(_spec(folder, 0.05, seed=1))}


def _walk(obj):
    yield obj
    if dataclasses.is_dataclass(obj):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _walk(v)


def test_a_pin_keeps_the_results_summary_numbers_and_no_arrays(results):
    result = results["A"]
    pin = cmp.pin_run(result, "A")
    assert list(pin.methods) == list(result.methods) == ["none", "nudge-m", "nudge-n"]
    for name, res in result.methods.items():
        m = pin.methods[name]
        assert m.gamma == res.gamma and m.fit_seconds == res.fit_seconds
        assert m.metrics == res.metrics
        assert m.compared_to_none == res.comparison
        assert m.ood_metrics is None
    assert pin.methods["nudge-n"].gamma == pytest.approx(0.05)
    assert pin.methods["none"].compared_to_none == {}
    assert set(pin.methods["nudge-m"].compared_to_none) == set(COMPARED)
    assert pin.spec == result.spec.to_json() and pin.run_spec() == result.spec
    assert pin.split == result.split.description and pin.split_sizes == result.split.sizes()
    assert not any(isinstance(x, np.ndarray) for x in _walk(pin))
    assert len(json.dumps(pin.to_json())) < 20_000  # summary numbers only


def test_a_pin_round_trips_through_json(results):
    pin = cmp.pin_run(results["B"], "B")
    assert cmp.PinnedRun.from_json(json.loads(json.dumps(pin.to_json()))) == pin
    assert pin.relabel("baseline").label == "baseline" and pin.relabel("x").methods == pin.methods


def test_non_finite_numbers_become_null(results):
    pin = cmp.pin_run(results["A"], "A")
    comp = dict(pin.methods["nudge-n"].compared_to_none["ndcg@10"], p_value=float("nan"))
    broken = dataclasses.replace(pin.methods["nudge-n"], compared_to_none={"ndcg@10": comp})
    pin = dataclasses.replace(pin, methods={**pin.methods, "nudge-n": broken})
    text = json.dumps(pin.to_json(), allow_nan=False)  # raises on NaN
    assert json.loads(text)["methods"]["nudge-n"]["compared_to_none"]["ndcg@10"]["p_value"] is None
    row = [r for r in cmp.long_rows([pin]) if r["method"] == "nudge-n" and r["metric"] == "ndcg@10"
           and r["part"] == "test"][0]
    assert math.isnan(row["p_value"])
    assert "nan" not in cmp.comparison_csv([pin]).decode().lower()


def test_the_dataset_fingerprint_is_the_content(folder, tmp_path):
    ds = load_dataset(folder)
    again = dataclasses.replace(ds, name="other name", source="elsewhere")
    assert cmp.dataset_fingerprint(again) == cmp.dataset_fingerprint(ds)
    changed = ds.corpus_emb.copy()
    changed[7, 3] += 1e-3
    assert cmp.dataset_fingerprint(dataclasses.replace(ds, corpus_emb=changed)) != \
        cmp.dataset_fingerprint(ds)
    qrels = {**ds.qrels, ds.labelled_ids[0]: {ds.corpus_ids[0]: 1}}
    assert cmp.dataset_fingerprint(dataclasses.replace(ds, qrels=qrels)) != cmp.dataset_fingerprint(ds)


def test_long_rows_are_run_by_method_by_metric(results):
    pins = [cmp.pin_run(results["A"], "A"), cmp.pin_run(results["B"], "B")]
    rows = cmp.long_rows(pins)
    assert all(tuple(r) == cmp.LONG_COLUMNS for r in rows)
    n_metrics = len(results["A"].methods["none"].metrics)
    assert len(rows) == 2 * 3 * (2 + n_metrics)
    assert {r["part"] for r in rows} == {"fit", "test"}  # no OOD set in these runs
    index = {(r["run"], r["method"], r["part"], r["metric"]): r for r in rows}
    for label, result in (("A", results["A"]), ("B", results["B"])):
        res = result.methods["nudge-n"]
        assert index[(label, "nudge-n", "fit", "gamma")]["value"] == res.gamma
        assert index[(label, "nudge-n", "test", "recall@5")]["value"] == res.metrics["recall@5"]
        c = res.comparison["mrr@10"]
        got = index[(label, "nudge-n", "test", "mrr@10")]
        assert (got["delta"], got["ci_low"], got["ci_high"]) == (c["delta"], c["ci_low"], c["ci_high"])
        assert index[(label, "nudge-n", "test", "recall@5")]["delta"] is None  # not compared
        assert index[(label, "none", "test", "ndcg@10")]["delta"] is None  # the reference
    gammas = [index[(run, "nudge-n", "fit", "gamma")]["value"] for run in "AB"]
    assert gammas == [pytest.approx(0.05), pytest.approx(0.2)]


def test_summary_rows_one_per_run_and_method(results):
    pins = [cmp.pin_run(results["A"], "A"), cmp.pin_run(results["B"], "B")]
    rows = cmp.summary_rows(pins)
    assert [(r["run"], r["method"]) for r in rows] == [(run, m) for run in "AB"
                                                     for m in ("none", "nudge-m", "nudge-n")]
    b = rows[5]
    res = results["B"].methods["nudge-n"]
    assert b["gamma"] == pytest.approx(0.2) and b["ndcg@10"] == res.metrics["ndcg@10"]
    assert b["delta ndcg@10"] == res.comparison["ndcg@10"]["delta"]
    assert b["ci_low"] <= b["delta ndcg@10"] <= b["ci_high"]
    assert b["ood ndcg@10"] is None and rows[0]["delta ndcg@10"] is None


def test_ood_numbers_are_kept_and_tabled(tmp_path):
    corpus, queries, qrels = make_arrays(n_records=160, n_queries=100, seed=2)
    write_dataset(tmp_path / "toy", corpus, queries, qrels)
    result = _run(_spec(tmp_path / "toy", 0.1, ood="kmeans"))
    pin = cmp.pin_run(result, "K")
    res = result.methods["nudge-m"]
    assert pin.ood == "kmeans" and pin.ood_fingerprint is not None
    assert pin.methods["nudge-m"].ood_metrics == res.ood_metrics
    row = cmp.summary_rows([pin])[1]
    assert row["ood ndcg@10"] == res.ood_metrics["ndcg@10"]
    ood_rows = [r for r in cmp.long_rows([pin]) if r["part"] == "ood" and r["method"] == "nudge-m"
                and r["metric"] == "ndcg@10"]
    assert ood_rows[0]["delta"] == res.ood_comparison["ndcg@10"]["delta"]


def test_like_for_like_names_what_differs(results, tmp_path):
    a, b, s = (cmp.pin_run(results[k], k) for k in "ABS")
    assert cmp.like_for_like([a, b]) == []
    assert cmp.like_for_like([a]) == []
    notes = cmp.like_for_like([a, b, s])
    assert len(notes) == 1 and "different query splits" in notes[0] and "A, B; S" in notes[0]
    other = write_toy(tmp_path / "other", n_records=160, n_queries=100, seed=5)
    d = cmp.pin_run(_run(_spec(other, 0.05)), "D")
    notes = cmp.like_for_like([a, d])
    assert len(notes) == 1 and "different data" in notes[0] and "A; D" in notes[0]
    # same data and split, other OOD query set: only the OOD columns are flagged
    o1 = dataclasses.replace(a, label="O1", ood="x", ood_fingerprint="1")
    o2 = dataclasses.replace(a, label="O2", ood="y", ood_fingerprint="2")
    notes = cmp.like_for_like([o1, o2, b])
    assert len(notes) == 1 and "different OOD query sets" in notes[0] and "O1; O2" in notes[0]


def test_csv_is_the_long_table(results):
    pins = [cmp.pin_run(results["A"], "A"), cmp.pin_run(results["B"], "B")]
    parsed = list(csv.DictReader(io.StringIO(cmp.comparison_csv(pins).decode())))
    rows = cmp.long_rows(pins)
    assert len(parsed) == len(rows) and tuple(parsed[0]) == cmp.LONG_COLUMNS
    for got, want in zip(parsed, rows):
        assert got["run"] == want["run"] and got["metric"] == want["metric"]
        assert (got["value"] == "") == (want["value"] is None)
        if want["value"] is not None:
            assert float(got["value"]) == pytest.approx(want["value"], rel=1e-12)


def test_json_holds_every_run_notes_and_commands(results):
    pins = [cmp.pin_run(results[k], k) for k in "ABS"]
    obj = json.loads(cmp.comparison_json(pins))
    assert [r["label"] for r in obj["runs"]] == ["A", "B", "S"]
    assert [cmp.PinnedRun.from_json(r) for r in obj["runs"]] == pins
    assert obj["not_like_for_like"] == cmp.like_for_like(pins) and obj["not_like_for_like"]
    assert obj["commands"]["B"] == cmp.command(pins[1]) and "run-B.json" in obj["commands"]["B"]


def test_the_script_reruns_each_pinned_run(results, tmp_path, monkeypatch):
    pins = [cmp.pin_run(results["A"], "A"), cmp.pin_run(results["B"], "B/2")]
    script = cmp.reproduce_script(pins).decode()
    assert script.startswith("#!/bin/sh\n") and "set -e" in script
    commands = [line for line in script.splitlines() if line.startswith("nudge-explorer ")]
    assert commands == [cmp.command(p) for p in pins]
    assert "run-B_2.json" in commands[1]  # a label is made safe for a file name
    monkeypatch.chdir(tmp_path)
    assert cli.main(shlex.split(commands[1])[1:]) == 0
    again = json.loads((tmp_path / "run-B_2.json").read_text())
    assert again["methods"]["nudge-n"]["gamma"] == pytest.approx(0.2)
    assert again["methods"]["nudge-n"]["metrics"] == pins[1].methods["nudge-n"].metrics


def test_the_fingerprint_reads_in_blocks_and_sharded_corpora_hash_the_same(folder, tmp_path,
                                                                            monkeypatch):
    from nudge_core.shards import write_shards

    ds = load_dataset(folder)
    whole = cmp.dataset_fingerprint(ds)
    monkeypatch.setattr(cmp, "HASH_ROWS", 7)  # blocks that do not divide the row count
    assert cmp.dataset_fingerprint(ds) == whole
    sharded = write_shards(ds.corpus_emb, tmp_path / "shards", rows=45)
    assert sharded.n_shards > 1
    assert cmp.dataset_fingerprint(dataclasses.replace(ds, corpus_emb=sharded)) == whole
    # the same bytes moved between vectors and ids are still another dataset
    short = dataclasses.replace(ds, corpus_emb=ds.corpus_emb[:-1], corpus_ids=ds.corpus_ids[:-1])
    assert cmp.dataset_fingerprint(short) != whole
