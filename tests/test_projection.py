"""Aligned 2-D maps: fit on the originals, place moved records and queries with the same mapping."""

from __future__ import annotations

import numpy as np
import pytest

from nudge_core import MethodSettings, RunSpec, paper_split, run_experiment
from nudge_core.projection import (Layout, compute_layout, positions, pull_counts, sample_rows,
                                   why_moved)
from synthetic import make_dataset


@pytest.fixture(scope="module")
def fitted():
    ds = make_dataset(n_records=200, n_queries=100)
    split = paper_split(ds.labelled_ids, 0)
    result = run_experiment(ds, split, RunSpec(methods=(MethodSettings("nudge-n", 0.2),)))
    return ds, split, result


def test_pull_counts_counts_queries_once_each(fitted):
    ds, split, _ = fitted
    train = ds.queries(split.train)
    counts = pull_counts(train, ds.n_records)
    brute = np.zeros(ds.n_records, int)
    for ans in train.answers:
        for r in set(ans.tolist()):
            brute[r] += 1
    assert np.array_equal(counts, brute)


def test_sample_rows():
    assert np.array_equal(sample_rows(10, np.array([3]), 50), np.arange(10))
    rows = sample_rows(1000, np.array([7, 999]), 100, seed=1)
    assert len(rows) == 100 and {7, 999} <= set(rows.tolist()) and np.all(np.diff(rows) > 0)


def test_pca_layout_keeps_unmoved_records_fixed(fitted):
    ds, split, result = fitted
    est = result.methods["nudge-n"].estimator
    emb = result.methods["nudge-n"].embeddings
    lay = compute_layout(ds.corpus_emb, est.moved_, emb[est.moved_],
                         {"test": result.test.emb}, method="pca")
    assert len(est.moved_) > 3
    assert isinstance(lay, Layout) and lay.xy.shape == (ds.n_records, 2)
    assert lay.before.shape == lay.after.shape == (len(est.moved_), 2)
    assert lay.queries["test"].shape == (len(result.test), 2)
    # moved records start where the fit put them
    assert np.allclose(lay.before, lay.xy[est.moved_])
    # an unmoved record placed with the same mapping lands where the fit put it
    unmoved = np.setdiff1d(np.arange(ds.n_records), est.moved_)[:5]
    again = compute_layout(ds.corpus_emb, unmoved, np.asarray(ds.corpus_emb[unmoved]), method="pca")
    assert np.allclose(again.after, again.xy[unmoved], atol=1e-5)
    assert positions(lay, est.moved_[:3], after=True).shape == (3, 2)
    assert np.allclose(positions(lay, est.moved_[:3], after=True), lay.after[:3])


def test_subsampled_layout_keeps_moved(fitted):
    ds, _, result = fitted
    est = result.methods["nudge-n"].estimator
    lay = compute_layout(ds.corpus_emb, est.moved_, result.methods["nudge-n"].embeddings[est.moved_],
                         method="pca", max_points=len(est.moved_) + 10)
    assert lay.subsampled and len(lay.rows) == len(est.moved_) + 10
    assert set(est.moved_.tolist()) <= set(lay.rows.tolist())


def test_unknown_projection(fitted):
    ds, _, _ = fitted
    with pytest.raises(ValueError, match="method must be one of"):
        compute_layout(ds.corpus_emb, np.zeros(0, int), np.zeros((0, ds.dim)), method="tsne")


@pytest.mark.slow
def test_umap_layout_small(fitted):
    ds, _, result = fitted
    est = result.methods["nudge-n"].estimator
    lay = compute_layout(ds.corpus_emb, est.moved_, result.methods["nudge-n"].embeddings[est.moved_],
                         method="umap", n_epochs=20)
    assert lay.xy.shape == (ds.n_records, 2) and np.isfinite(lay.after).all()


@pytest.mark.parametrize("method", ["nudge-m", "nudge-n"])
def test_why_moved_matches_the_pulls_and_the_index(method):
    ds = make_dataset(n_records=200, n_queries=100)
    split = paper_split(ds.labelled_ids, 0)
    result = run_experiment(ds, split, RunSpec(methods=(MethodSettings(method, 0.3),)))
    res, est = result.methods[method], result.methods[method].estimator
    train = ds.queries(split.train)
    before, after = result.methods["none"].embeddings, res.embeddings
    counts = pull_counts(train, ds.n_records)
    row = int(est.moved_[np.argmax(counts[est.moved_])])
    why = why_moved(row, before, after, train)
    assert why.shift == pytest.approx(float(est.shift_[list(est.moved_).index(row)]), rel=1e-5)
    assert sorted(why.query_ids) == sorted(q for q, a in zip(train.ids, train.answers) if row in a)
    assert len(why.query_ids) == counts[row] >= 1
    assert why.norm_before == pytest.approx(1.0, abs=1e-5)
    if method == "nudge-m":  # e = v + γ ĉ: longer, by exactly what the closed form says
        assert why.norm_after > 1.0
    else:
        assert why.norm_after == pytest.approx(1.0, abs=1e-5)
    # NUDGE moves a record toward the sum of its pulling queries: closer to them on average
    assert why.cos_after.mean() > why.cos_before.mean()
    # ranks as each index searches: 1 + records scoring strictly higher for that query
    for j, pos in enumerate(why.query_pos):
        q = train.emb[pos]
        for vecs, rank in ((before, why.rank_before[j]), (after, why.rank_after[j])):
            scores = vecs @ q  # (float rounding may differ from why_moved's in the last bits)
            lo, hi = (1 + (scores > scores[row] + d).sum() for d in (1e-5, -1e-5))
            assert lo <= rank <= hi
    with pytest.raises(ValueError, match="record row -1 is outside"):
        why_moved(-1, before, after, train)


@pytest.mark.slow
def test_umap_code_is_cached_on_disk():
    """umap marks only one numba function cache=True; cache_compiled_code asks numba to cache
    the rest (in $NUMBA_CACHE_DIR), so a new server process does not compile them again."""
    import umap  # noqa: F401 - loads the modules whose functions get cached
    from numba.core.caching import FunctionCache
    from numba.core.registry import CPUDispatcher

    from nudge_core.projection import cache_compiled_code
    from umap import layouts

    cache_compiled_code()
    jitted = [f for f in vars(layouts).values() if isinstance(f, CPUDispatcher)]
    assert jitted and all(isinstance(f._cache, FunctionCache) for f in jitted)
    assert cache_compiled_code() == 0  # idempotent


def test_umap_code_caching_gives_up_quietly_when_numba_internals_move(monkeypatch):
    """cache_compiled_code leans on numba internals: if a release moves them, the UMAP map must
    still be computed (compiled as before), not fail."""
    import numba.core.caching

    from nudge_core.projection import cache_compiled_code

    monkeypatch.delattr(numba.core.caching, "NullCache")
    assert cache_compiled_code() == 0
