"""Sharded corpora: the folder format, its strict checks, and the ``nudge-explorer shard`` tool."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nudge_core.cli import main
from nudge_core.data import load_dataset
from nudge_core.errors import DataError
from nudge_core.shards import ShardedCorpus, shard_dataset
from synthetic import make_arrays, write_dataset


@pytest.fixture()
def pair(tmp_path):
    corpus, queries, qrels = make_arrays(n_records=120, dim=8, n_queries=60, seed=3, noise=0.3)
    write_dataset(tmp_path / "one", corpus, queries, qrels)
    shard_dataset(tmp_path / "one", 50, tmp_path / "sharded")
    return tmp_path, corpus


def shard_dir(tmp_path):
    return tmp_path / "sharded" / "emb" / "toy" / "corpus"


def test_sharded_folder_loads_with_the_same_rows(pair):
    tmp_path, corpus = pair
    ds = load_dataset(tmp_path / "sharded")
    assert isinstance(ds.corpus_emb, ShardedCorpus)
    assert ds.corpus_emb.rows == [50, 50, 20]
    assert ds.corpus_emb.shape == corpus.shape
    np.testing.assert_array_equal(np.asarray(ds.corpus_emb), corpus)
    np.testing.assert_array_equal(ds.corpus_emb[45:105], corpus[45:105])
    rows = np.array([119, 0, 50, 49, 77])
    np.testing.assert_array_equal(ds.corpus_emb[rows], corpus[rows])
    one = load_dataset(tmp_path / "one")
    assert ds.qrels == one.qrels and ds.corpus_ids == one.corpus_ids


def test_shards_without_a_manifest_are_read_in_name_order(pair):
    tmp_path, corpus = pair
    (shard_dir(tmp_path) / "manifest.json").unlink()
    np.testing.assert_array_equal(np.asarray(load_dataset(tmp_path / "sharded").corpus_emb), corpus)


def test_missing_shard_is_named(pair):
    tmp_path, _ = pair
    (shard_dir(tmp_path) / "shard-00001.npy").unlink()
    with pytest.raises(DataError, match=r"shard-00001\.npy: shard file is missing"):
        load_dataset(tmp_path / "sharded")


def test_truncated_shard_is_named(pair):
    tmp_path, _ = pair
    path = shard_dir(tmp_path) / "shard-00002.npy"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError, match=r"shard-00002\.npy: not a valid \.npy shard \(the file holds less"):
        load_dataset(tmp_path / "sharded")


def test_float64_shard_is_refused(pair):
    tmp_path, corpus = pair
    np.save(shard_dir(tmp_path) / "shard-00000.npy", corpus[:50].astype(np.float64))
    with pytest.raises(DataError, match=r"shard-00000\.npy: has dtype float64 .* float32"):
        load_dataset(tmp_path / "sharded")


def test_shard_of_another_dimension_is_named(pair):
    tmp_path, _ = pair
    np.save(shard_dir(tmp_path) / "shard-00002.npy", np.ones((20, 7), np.float32))
    with pytest.raises(DataError, match=r"shard-00002\.npy: has dimension 7 but .* has 8"):
        load_dataset(tmp_path / "sharded")


def test_manifest_row_count_must_match(pair):
    tmp_path, _ = pair
    manifest = shard_dir(tmp_path) / "manifest.json"
    data = json.loads(manifest.read_text())
    data["shards"][1][1] = 49
    manifest.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"shard-00001\.npy: has 50 rows but manifest.json says 49"):
        load_dataset(tmp_path / "sharded")


def test_ids_count_must_equal_all_shard_rows(pair):
    tmp_path, _ = pair
    ids = tmp_path / "sharded" / "emb" / "toy" / "corpus_ids.txt"
    ids.write_text("".join(f"d{i}\n" for i in range(119)))
    with pytest.raises(DataError, match=r"has 119 ids but corpus/ \(all shards\) has 120 rows"):
        load_dataset(tmp_path / "sharded")


def test_nan_in_a_shard_names_it_and_writes_nothing(pair, capsys):
    tmp_path, corpus = pair
    bad = corpus[50:100].copy()
    bad[7, 3] = np.nan
    np.save(shard_dir(tmp_path) / "shard-00001.npy", bad)
    out = tmp_path / "emb_out"
    code = main(["run", str(tmp_path / "sharded"), "--methods", "none,nudge-n",
                 "--save-embeddings", str(out), "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2
    assert "shard-00001.npy, row 7: contains NaN" in err
    assert not out.exists() and not (tmp_path / "r.json").exists()


def test_cli_shard_writes_a_dataset_run_accepts(pair, capsys):
    tmp_path, corpus = pair
    assert main(["shard", str(tmp_path / "one"), "--rows", "33", "--out", str(tmp_path / "s2")]) == 0
    assert "4 shards" in capsys.readouterr().out
    assert main(["run", str(tmp_path / "s2"), "--methods", "none,nudge-n",
                 "--out", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["n_records"] == len(corpus)


def test_cli_shard_refuses_an_existing_output(pair, capsys):
    tmp_path, _ = pair
    assert main(["shard", str(tmp_path / "one"), "--rows", "10", "--out", str(tmp_path / "sharded")]) == 2
    assert "already exists; give a new folder" in capsys.readouterr().err
