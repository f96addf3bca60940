"""Exports (tables, JSON, CSV, embeddings, command line)."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import numpy as np
import pytest

from nudge_core import RunSpec, cli, load_dataset, paper_split, run_experiment
from nudge_core import exports
from synthetic import write_toy


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_toy(tmp_path_factory.mktemp("toy"), n_records=200, n_queries=120)


@pytest.fixture(scope="module")
def result(folder):
    ds = load_dataset(folder)
    split = paper_split(ds.labelled_ids, 0)
    return run_experiment(ds, split, RunSpec(str(folder), methods=("nudge-m", "nudge-n")))


def test_results_json_is_the_cli_json(folder, result, tmp_path):
    out = tmp_path / "r.json"
    assert cli.main(["run", str(folder), "--methods", "nudge-m,nudge-n", "--out", str(out)]) == 0
    ours = json.loads(exports.results_json(result))
    theirs = json.loads(out.read_text())
    for m in ("none", "nudge-m", "nudge-n"):
        assert ours["methods"][m]["metrics"] == theirs["methods"][m]["metrics"]
        assert ours["methods"][m]["per_query"] == theirs["methods"][m]["per_query"]
    ours.pop("seconds"), theirs.pop("seconds")
    for d in (ours, theirs):
        for m in d["methods"].values():
            m.pop("fit_seconds")
    assert ours == theirs


def test_reproduce_command_runs(folder, result, tmp_path):
    out = tmp_path / "again.json"
    cmd = exports.reproduce_command(result.spec, out=str(out))
    assert cmd.startswith("nudge-explorer run ")
    import shlex
    argv = shlex.split(cmd)[1:]
    assert cli.main(argv) == 0
    again = json.loads(out.read_text())
    assert again["methods"]["nudge-n"]["metrics"] == result.to_json()["methods"]["nudge-n"]["metrics"]


def test_tables(result):
    rows = exports.metrics_rows(result)
    assert [r["method"] for r in rows] == ["none", "nudge-m", "nudge-n"]
    assert rows[2]["ndcg@10"] == result.methods["nudge-n"].metrics["ndcg@10"]
    comp = exports.comparison_rows(result)
    assert len(comp) == 6 and comp[0]["delta"] == result.methods["nudge-m"].comparison["ndcg@10"]["delta"]
    wl = exports.wins_losses(result, "nudge-n", n=3)
    assert all(r["change"] > 0 for r in wl if r["kind"] == "win")
    assert all(r["change"] < 0 for r in wl if r["kind"] == "loss")
    facts = {r["fact"]: r["value"] for r in exports.dataset_facts(result.dataset, result.split)}
    assert facts["records"] == "200" and "train queries" in facts
    assert {r["part"] for r in exports.ood_rows(result)} == {"in-distribution"}


def test_per_query_csv(result):
    rows = list(csv.DictReader(io.StringIO(exports.per_query_csv(result).decode())))
    assert len(rows) == 3 * len(result.test)
    first = [r for r in rows if r["method"] == "nudge-n"][0]
    assert float(first["ndcg@10"]) == pytest.approx(result.methods["nudge-n"].per_query["ndcg@10"][0])
    assert exports.per_query_csv(result, ood=True) == b""


def test_embeddings_zip_and_split(result):
    data = exports.embeddings_zip(result, ["nudge-m"])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert sorted(zf.namelist()) == ["nudge-m/corpus.npy", "nudge-m/corpus_ids.txt"]
        arr = np.load(io.BytesIO(zf.read("nudge-m/corpus.npy")), allow_pickle=False)
        ids = zf.read("nudge-m/corpus_ids.txt").decode().split()
    assert np.array_equal(arr, result.methods["nudge-m"].embeddings)
    assert ids == result.dataset.corpus_ids
    assert json.loads(exports.split_json(result))["test"] == result.split.test


def test_topk_table(result):
    ds = result.dataset
    before = result.methods["none"].test_top[0, :10]
    after = result.methods["nudge-n"].test_top[0, :10]
    assert np.array_equal(after, result.methods["nudge-n"].estimator.search(result.test.emb[:1], 10)[0])
    rows = exports.topk_table(ds, result.test, 0, before, after)
    assert len(rows) == 10 and rows[0]["rank"] == 1
    assert rows[0]["before_text"].startswith("Doc")
    relevant = {ds.corpus_ids[r] for r in result.test.answers[0]}
    assert all((r["after_relevant"] > 0) == (r["after_id"] in relevant) for r in rows)


def test_sweep_exports_per_seed_table_curves_and_json(folder, result):
    from nudge_core.sensitivity import log_grid, sensitivity_sweep

    ds = result.dataset
    splits = [paper_split(ds.labelled_ids, s) for s in (3, 4)]
    sw = sensitivity_sweep(ds, splits, result.spec, grids={"nudge-m": log_grid("nudge-m", 4),
                                                           "nudge-n": log_grid("nudge-n", 4)})
    rows = exports.seed_rows(sw, [3, 4])
    assert [(r["seed"], r["method"]) for r in rows] == [(3, "nudge-m"), (3, "nudge-n"),
                                                        (4, "nudge-m"), (4, "nudge-n")]
    for r in rows:
        i = [3, 4].index(r["seed"])
        kept = sw.chosen_metrics[r["method"]][i]
        assert r["chosen_gamma"] == sw.chosen[r["method"]][i]
        assert r["test ndcg@10"] == kept["test"]["ndcg@10"]
        assert r["test Δndcg@10"] == pytest.approx(kept["test"]["ndcg@10"] - kept["test before"]["ndcg@10"])
        assert "ood ndcg@10" not in r  # this split has no OOD queries
    curves = exports.sweep_rows(sw, [3, 4])
    assert len(curves) == 2 * 3 * 2 * 4  # methods x parts (train, val, test) x seeds x γ values
    first = curves[0]
    assert first["gamma"] == sw.gammas[first["method"]][0]
    assert first["ndcg@10"] == sw.values[first["method"]][first["part"]][0, 0]
    parsed = list(csv.DictReader(io.StringIO(exports.rows_csv(curves).decode())))
    assert len(parsed) == len(curves) and float(parsed[5]["ndcg@10"]) == pytest.approx(curves[5]["ndcg@10"])
    data = json.loads(exports.sweep_json(sw, [3, 4]))
    assert data["seeds"] == [3, 4] and len(data["per_seed"]) == 4
    assert data["methods"]["nudge-n"]["chosen_gamma"] == sw.chosen["nudge-n"]
