"""The index seam: ExactIndex is the numpy search behind the Index protocol."""

from __future__ import annotations

import numpy as np

from nudge_core.index import ExactIndex, Index
from nudge_core.retrieval import normalize_rows, search


def test_exact_index_is_the_search_and_replaces_rows():
    rng = np.random.default_rng(0)
    base = normalize_rows(rng.standard_normal((60, 8)).astype(np.float32))
    queries = rng.standard_normal((5, 8)).astype(np.float32)
    index = ExactIndex(base.copy())
    assert isinstance(index, Index) and (index.n, index.dim) == (60, 8)
    for exclude in (None, np.array([3, 7, 7, 59])):
        got = index.search(queries, 6, exclude=exclude)
        want = search(queries, base, 6, exclude=exclude)
        assert all(np.array_equal(g, w) for g, w in zip(got, want))
    _, _, kept = index.search(queries, 2, exclude=np.array([7, 3]), excluded_scores=True)
    assert np.allclose(kept, queries @ base[[3, 7]].T)
    assert np.array_equal(index.take([4, 1]), base[[4, 1]])
    index.replace(np.array([4]), -base[[4]])
    assert np.array_equal(index.take([4]), -base[[4]]) and np.array_equal(base[4], base[4])
    assert 4 not in index.search(base[[4]], 1)[1]
