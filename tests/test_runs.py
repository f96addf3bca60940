"""The app's run plumbing outside a page: the results cache and the split its choices describe."""

from __future__ import annotations

from explorer_app import runs
from explorer_app.session import DEFAULT_SPLIT
from nudge_core import kmeans_ood_split, paper_split
from synthetic import make_dataset


def test_cache_keeps_the_most_recently_used():
    cache, calls = runs._Cache(2), []

    def compute(value):
        calls.append(value)
        return value

    assert cache.get("a", lambda: compute(1)) == 1
    assert cache.get("b", lambda: compute(2)) == 2
    assert cache.get("a", lambda: compute(9)) == 1  # a hit: not recomputed, now most recent
    cache.get("c", lambda: compute(3))  # evicts "b", the least recently used
    assert list(cache.items) == ["a", "c"] and calls == [1, 2, 3]


def test_make_split_follows_the_data_pages_choices():
    ds = make_dataset(n_records=120, n_queries=80)
    split = runs.make_split(dict(DEFAULT_SPLIT, seed=3), ds)
    assert split.test == paper_split(ds.labelled_ids, seed=3, val_frac=0.1, test_frac=0.2).test
    with_ood = runs.make_split(dict(DEFAULT_SPLIT, seed=3, ood="kmeans"), ds)
    assert with_ood.ood == kmeans_ood_split(ds, split, seed=3).ood and with_ood.ood
