"""Splits: the paper protocol (exact reference permutation), JSON splits, qrels-file splits, OOD."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nudge_core.errors import DataError
from nudge_core.splits import (kmeans_ood_split, paper_split, split_from_json,
                               split_from_qrels_files)
from synthetic import make_dataset


def test_paper_split_sizes_and_permutation():
    ids = [f"q{i}" for i in range(1109)]
    sp = paper_split(ids, seed=0)
    assert (len(sp.train), len(sp.val), len(sp.test)) == (778, 110, 221)
    perm = np.random.RandomState(0).permutation(1109)  # np.random.seed(0); np.random.permutation
    assert sp.val == [ids[i] for i in perm[:110]]
    assert sp.test == [ids[i] for i in perm[110:331]]
    assert sp.train == [ids[i] for i in perm[331:]]
    other = paper_split(ids, seed=0, layout="train-val-test")
    assert other.train == [ids[i] for i in perm[:778]]
    assert set(other.train) | set(other.val) | set(other.test) == set(ids)
    # the descriptions say the cut order in words (they are shown in the app and the JSON)
    assert sp.description.endswith("validation and test queries cut first from the shuffled "
                                   "order, the rest for training")
    assert "training queries cut first" in other.description


def test_paper_split_caps_and_ratios():
    ids = [str(i) for i in range(200_000)]
    sp = paper_split(ids, seed=3)
    assert (len(sp.val), len(sp.test)) == (10_000, 10_000)
    sp = paper_split(ids[:1000], seed=1, val_frac=0.25, test_frac=0.05)
    assert (len(sp.train), len(sp.val), len(sp.test)) == (700, 250, 50)
    assert paper_split(ids[:1000], seed=1).test != paper_split(ids[:1000], seed=2).test


def test_scifact_pooled_order_reproduces_reference_test_set(scifact):
    sp = paper_split(scifact.labelled_ids, seed=0)
    assert scifact.labelled_ids[:3] == list(scifact.qrels_files["train"])[:3]
    assert len(set(sp.test)) == 221 and not set(sp.test) & set(sp.train)


@pytest.mark.parametrize("n", [0, 1, 3, 9])
def test_too_few_queries_is_a_clear_error(n):
    with pytest.raises(DataError, match="split is empty"):
        paper_split([str(i) for i in range(n)])


def test_json_split_round_trip(tmp_path):
    ds = make_dataset(n_queries=40)
    ids = ds.labelled_ids
    obj = {"train": ids[:20], "val": ids[20:30], "test": ids[30:]}
    (tmp_path / "s.json").write_text(json.dumps(obj))
    sp = split_from_json(tmp_path / "s.json", ds)
    assert sp.to_json() == obj


def test_qrels_files_split_carves_validation_from_train():
    ds = make_dataset(n_queries=50)
    ids = ds.labelled_ids
    ds.qrels_files = {"train": {q: ds.qrels[q] for q in ids[:40]},
                      "test": {q: ds.qrels[q] for q in ids[40:]}}
    sp = split_from_qrels_files(ds, seed=0, val_frac=0.1)
    assert len(sp.val) == 4 and len(sp.train) == 36 and sp.test == ids[40:]
    assert set(sp.val) | set(sp.train) == set(ids[:40])


def test_kmeans_ood_split_uses_training_clusters():
    from sklearn.cluster import KMeans

    ds = make_dataset(n_queries=200, seed=4)
    base = paper_split(ds.labelled_ids, seed=0)
    sp = kmeans_ood_split(ds, base, seed=0)
    emb = lambda ids: np.asarray(ds.query_emb[[ds.query_row[q] for q in ids]])
    km = KMeans(n_clusters=2, random_state=0, n_init="auto").fit(emb(base.train))
    assert sp.train == [q for q, c in zip(base.train, km.labels_) if c == 0]
    assert sp.ood == [q for q, c in zip(base.test, km.predict(emb(base.test))) if c == 1]
    assert set(sp.test) | set(sp.ood) == set(base.test)
    assert set(sp.val) <= set(base.val)
