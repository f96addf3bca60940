"""Blocked exact search: matches brute force, exclusion honoured, padding when the corpus is small."""

from __future__ import annotations

import time

import numpy as np
import pytest

import nudge_core.retrieval as retrieval
from nudge_core.retrieval import merge_topk, normalize_rows, search


def brute(q, x, k, exclude=()):
    s = q @ x.T
    s[:, list(exclude)] = -np.inf
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def test_search_matches_brute_force_across_blocks():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 12)).astype(np.float32)
    q = rng.standard_normal((30, 12)).astype(np.float32)
    excl = rng.choice(1000, 200, replace=False)
    for block in (7, 100, 65536):
        scores, rows = search(q, x, 15, exclude=excl, block_rows=block)
        assert np.array_equal(rows, brute(q, x, 15, excl))
        assert np.allclose(scores, np.take_along_axis(q @ x.T, rows, axis=1), atol=1e-5)


def test_search_pads_when_fewer_records_than_k():
    x = np.eye(3, dtype=np.float32)
    scores, rows = search(np.ones((2, 3), np.float32), x, 5, exclude=[1])
    assert (rows[:, 2:] == -1).all() and np.isneginf(scores[:, 2:]).all()
    assert sorted(rows[0, :2].tolist()) == [0, 2]


def test_inner_product_not_cosine_for_unnormalised_records():
    x = np.array([[1, 0], [0.9, 0.1]], np.float32) * np.array([[1], [5]], np.float32)
    _, rows = search(np.array([[1, 0]], np.float32), x, 1)
    assert rows[0, 0] == 1                   # the longer vector wins under inner product
    _, rows = search(np.array([[1, 0]], np.float32), normalize_rows(x), 1)
    assert rows[0, 0] == 0                   # and loses under cosine


def test_normalize_rows_blocked_and_memmap(tmp_path):
    x = np.random.default_rng(1).standard_normal((50, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = normalize_rows(np.load(tmp_path / "x.npy", mmap_mode="r"), block_rows=7)
    assert np.allclose(out, x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-6)


def test_merge_topk():
    rows = merge_topk(np.array([[0.1, 0.9]]), np.array([[5, 6]]), np.array([[0.5, -np.inf]]),
                      np.array([[7, -1]]), 3)
    assert rows.tolist() == [[6, 7, 5]]


def test_search_k1_memmap_and_fully_excluded_blocks(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    q = rng.standard_normal((9, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    excl = np.arange(0, 120)  # with block_rows=50 the first two blocks are wholly excluded
    for k in (1, 2, 40):
        scores, rows = search(q, mm, k, exclude=excl, block_rows=50)
        assert np.array_equal(rows, brute(q, x, k, excl))
        assert not np.isin(rows, excl).any()


def test_merge_topk_k1_picks_the_single_best():
    rows = merge_topk(np.array([[0.1, 0.9], [0.3, 0.2]]), np.array([5, 6]),
                      np.array([[0.5], [0.8]]), np.array([[7], [8]]), 1)
    assert rows.tolist() == [[6], [8]]


def test_search_agrees_with_faiss():
    import faiss

    rng = np.random.default_rng(7)
    x = rng.standard_normal((2000, 16)).astype(np.float32)
    q = rng.standard_normal((50, 16)).astype(np.float32)
    for k in (1, 10):
        index = faiss.IndexFlatIP(16)
        index.add(x)
        want_scores, want_rows = index.search(q, k)
        scores, rows = search(q, x, k, block_rows=300)
        assert np.array_equal(rows, want_rows)
        assert np.allclose(scores, want_scores, atol=1e-5)


def test_search_orders_equal_scores_by_row():
    x = np.ones((40, 3), np.float32)          # every record scores the same
    q = np.ones((5, 3), np.float32)
    for block in (3, 7, 40):
        _, rows = search(q, x, 6, exclude=[0, 2], block_rows=block)
        for r in rows.tolist():                # which tied rows win is arbitrary, their order is not
            assert r == sorted(r) and len(set(r)) == 6 and not {0, 2} & set(r)


def test_search_and_merge_refuse_or_handle_degenerate_k():
    import pytest

    with pytest.raises(ValueError, match="k must be"):
        search(np.ones((1, 2), np.float32), np.ones((3, 2), np.float32), 0)
    rows = merge_topk(np.zeros((2, 0)), np.zeros(0, np.int64), np.zeros((2, 0)),
                      np.zeros((2, 0), np.int64), 1)
    assert rows.shape == (2, 0)


def test_search_returns_the_excluded_rows_scores_in_sorted_order():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((400, 10)).astype(np.float32)
    q = rng.standard_normal((6, 10)).astype(np.float32)
    excl = np.array([399, 3, 250, 3, 0, 128])          # unsorted, with a repeat, across blocks
    for block in (7, 64, 65536):
        scores, rows, kept = search(q, x, 4, exclude=excl, block_rows=block, excluded_scores=True)
        assert np.array_equal(rows, brute(q, x, 4, excl))
        assert kept.shape == (6, 5)
        assert np.allclose(kept, q @ x[np.unique(excl)].T, atol=1e-5)
    with pytest.raises(ValueError, match="inside the base"):
        search(q, x, 4, exclude=[400], excluded_scores=True)
    with pytest.raises(ValueError, match="needs exclude"):
        search(q, x, 4, excluded_scores=True)


@pytest.fixture
def threaded(monkeypatch):
    """normalize_rows takes its multi-threaded path even for tiny inputs."""
    monkeypatch.setattr(retrieval, "THREADED_MIN_ELEMS", 1)
    monkeypatch.setattr(retrieval, "_threads", lambda: 3)


def test_threaded_normalize_rows_is_bit_identical(threaded):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1001, 24)) * rng.uniform(0.1, 10, (1001, 1))
    x[5] = 0
    one_thread = np.empty(x.shape, np.float32)
    for start in range(0, len(x), 100):  # the unthreaded formula, row block by row block
        b = x[start:start + 100].astype(np.float32)
        np.divide(b, np.maximum(np.sqrt(np.einsum("ij,ij->i", b, b)), 1e-12)[:, None],
                  out=one_thread[start:start + 100])
    for block in (13, 100, 65536):
        assert np.array_equal(normalize_rows(x, block_rows=block), one_thread)


def test_threaded_chunks_finish_before_an_error_propagates(threaded):
    done = []

    def chunk(a, b):
        if a == 0:
            raise RuntimeError("first chunk failed")
        time.sleep(0.2)
        done.append((a, b))

    with pytest.raises(RuntimeError, match="first chunk failed"):
        retrieval._run_chunks(chunk, 30, 30)
    assert len(done) == 2      # the other chunks had finished: nothing runs on after the raise


def test_threaded_chunks_honour_the_callers_errstate(threaded):
    x = np.ones((30, 2), np.float32)
    x[25] = [1e5, 1e-38]           # in the last chunk (a pool thread): 1e-38 / 1e5 underflows
    with np.errstate(under="raise"), pytest.raises(FloatingPointError, match="underflow"):
        normalize_rows(x)
    with np.errstate(under="ignore"):
        normalize_rows(x)


def _normalize_in_child(queue) -> None:
    queue.put(float(normalize_rows(np.ones((2000, 8), np.float32)).sum()))


def test_normalize_rows_works_in_a_forked_child_after_threads_ran(threaded):
    import multiprocessing as mp

    normalize_rows(np.ones((2000, 8), np.float32))       # the pool now has threads
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_normalize_in_child, args=(queue,))
    child.start()
    child.join(20)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "normalize_rows hung in a forked child (inherited pool without threads)"
    assert queue.get(timeout=5) == pytest.approx(2000 * np.sqrt(8))


def test_normalize_rows_is_scale_free_and_keeps_zero_rows():
    """Any finite non-zero scale gives the same unit rows (float64 for extreme norms); before,
    rows of norm < 1e-12 stayed near zero and rows of components > ~1e19 became zero."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 24)).astype(np.float32)
    x[5] = 0
    unit = normalize_rows(x)
    assert not unit[5].any() and np.allclose(np.linalg.norm(np.delete(unit, 5, 0), axis=1), 1, atol=1e-6)
    for scale in (1e-38, 1e-30, 1e-13, 1e13, 1e25, 1e36):
        scaled = (x.astype(np.float64) * scale).astype(np.float32)
        assert np.abs(normalize_rows(scaled) - unit).max() < 1e-6, scale
