"""Exports (tables, JSON, CSV, embeddings, command line) and upload handling."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import numpy as np
import pytest

from nudge_core import DataError, Settings, cli, load_dataset, paper_split, run_experiment
from nudge_core import exports
from nudge_core.uploads import (content_hash, folder_hash, load_uploaded_dataset,
                                load_uploaded_queries, tidy_message)
from synthetic import make_arrays, write_dataset, zip_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy")
    corpus, queries, qrels = make_arrays(n_records=200, n_queries=120)
    write_dataset(path, corpus, queries, qrels)
    return path


@pytest.fixture(scope="module")
def result(folder):
    ds = load_dataset(folder)
    split = paper_split(ds.labelled_ids, 0)
    return run_experiment(ds, split, Settings(methods=("nudge-m", "nudge-n")))


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
    cmd = exports.reproduce_command(result, str(folder), out=str(out))
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
    before = exports.ranked(result, "none", result.test.subset([0]), 10)[0]
    after = exports.ranked(result, "nudge-n", result.test.subset([0]), 10)[0]
    rows = exports.topk_table(ds, result.test, 0, before, after)
    assert len(rows) == 10 and rows[0]["rank"] == 1
    assert rows[0]["before_text"].startswith("Doc")
    relevant = {ds.corpus_ids[r] for r in result.test.answers[0]}
    assert all((r["after_relevant"] > 0) == (r["after_id"] in relevant) for r in rows)


# ------------------------------------------------------------------ uploads
def test_upload_zip_and_loose(folder, tmp_path):
    ds = load_uploaded_dataset([("toy.zip", zip_folder(folder))], tmp_path / "a")
    assert ds.n_records == 200 and ds.name == "toy"
    emb = folder / "emb" / "toy"
    loose = [(p.name, p.read_bytes()) for p in [emb / "corpus.npy", emb / "queries.npy",
                                                 emb / "corpus_ids.txt", emb / "query_ids.txt",
                                                 folder / "qrels" / "test.tsv", folder / "corpus.jsonl"]]
    ds2 = load_uploaded_dataset(loose, tmp_path / "b")
    assert ds2.n_records == 200 and ds2.corpus_text is not None
    assert np.array_equal(ds.corpus_emb, ds2.corpus_emb)
    assert content_hash(loose) == content_hash(list(reversed(loose)))
    assert folder_hash(folder) == folder_hash(folder)


def test_upload_errors_are_data_errors(folder, tmp_path):
    with pytest.raises(DataError, match="cannot tell what this file is"):
        load_uploaded_dataset([("notes.pdf", b"x")], tmp_path / "c")
    with pytest.raises(DataError):
        load_uploaded_dataset([("broken.zip", b"this is not a zip")], tmp_path / "d")
    emb = folder / "emb" / "toy"
    with pytest.raises(DataError) as err:
        load_uploaded_dataset([("corpus.npy", b"\x93NUMPY garbage"), ("queries.npy", (emb / "queries.npy").read_bytes()),
                               ("corpus_ids.txt", (emb / "corpus_ids.txt").read_bytes()),
                               ("query_ids.txt", (emb / "query_ids.txt").read_bytes()),
                               ("test.tsv", (folder / "qrels" / "test.tsv").read_bytes())], tmp_path / "e")
    assert "upload/" in tidy_message(str(err.value), tmp_path / "e")
    with pytest.raises(DataError, match="not both"):
        load_uploaded_dataset([("a.zip", b""), ("corpus.npy", b"")], tmp_path / "f")
    with pytest.raises(DataError, match="file names"):
        load_uploaded_dataset([("../../etc/x;y.npy", b"")], tmp_path / "g")


def test_upload_ood_queries(folder, tmp_path):
    ds = load_dataset(folder)
    emb = folder / "emb" / "toy"
    extra = load_uploaded_queries([("queries.npy", (emb / "queries.npy").read_bytes()),
                                   ("query_ids.txt", (emb / "query_ids.txt").read_bytes()),
                                   ("test.tsv", (folder / "qrels" / "test.tsv").read_bytes())],
                                  tmp_path / "o", ds)
    assert len(extra.queries) == len(ds.labelled_ids)
    with pytest.raises(DataError):
        load_uploaded_queries([("corpus.npy", b"")], tmp_path / "p", ds)
