"""Map faithfulness (neighbours kept by a 2-D map) and the local view of one moved record."""

from __future__ import annotations

import numpy as np
import pytest

from nudge_core.data import QuerySet
from nudge_core.faithfulness import (local_view, map_faithfulness, neighbour_overlap,
                                     pulling_queries)
from nudge_core.projection import Layout


def circle(n: int, dim: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors on a great circle inside R^dim (first two coordinates), and their exact
    2-D coordinates: a map that is the identity on the plane."""
    t = np.sort(np.random.default_rng(seed).uniform(0, 2 * np.pi, n))
    xy = np.column_stack([np.cos(t), np.sin(t)]).astype(np.float32)
    x = np.zeros((n, dim), np.float32)
    x[:, :2] = xy
    return x, xy


def test_neighbour_overlap_is_one_for_an_exact_map_and_near_chance_for_a_random_one():
    x, xy = circle(300)
    at = np.arange(0, 300, 7)
    assert np.allclose(neighbour_overlap(x, xy, at, 10), 1.0)
    shuffled = np.random.default_rng(1).permutation(xy)
    random = neighbour_overlap(x, shuffled, at, 10)
    assert random.mean() < 0.15  # chance is 10 / 299


def test_map_faithfulness_before_and_after_the_move():
    x, xy = circle(300, seed=2)
    moved = np.array([5, 50, 120, 250])
    # the moves: each record goes to another point of the circle (record r -> angle of r + 40)
    new = x[(moved + 40) % 300] * 1.7  # a change of length the maps do not show
    good = Layout("pca", np.arange(300), xy, moved, xy[moved], xy[(moved + 40) % 300])
    f = map_faithfulness(good, x, new, k=8)
    assert f.k == 8 and np.array_equal(f.rows, moved)
    assert np.allclose(f.before, 1.0) and np.allclose(f.after, 1.0)
    assert f.chance == pytest.approx(8 / 299)
    # a map that leaves the moved records where they were is faithful before, not after
    stuck = Layout("pca", np.arange(300), xy, moved, xy[moved], xy[moved])
    g = map_faithfulness(stuck, x, new, k=8)
    assert np.allclose(g.before, 1.0) and g.mean_after < 0.3


def test_map_faithfulness_samples_and_checks_k():
    x, xy = circle(200, seed=3)
    moved = np.arange(0, 200, 2)
    lay = Layout("umap", np.arange(200), xy, moved, xy[moved], xy[moved])
    f = map_faithfulness(lay, x, x[moved], k=5, max_records=10, seed=4)
    assert len(f.rows) == len(f.before) == 10 and set(f.rows.tolist()) <= set(moved.tolist())
    small = Layout("pca", np.arange(6), xy[:6], moved[:1], xy[:1], xy[:1])
    with pytest.raises(ValueError, match="needs at least 12 records on the map"):
        map_faithfulness(small, x, x[:1], k=10)


def test_local_view_keeps_the_real_move_and_its_pulls():
    x, _ = circle(120, dim=8, seed=5)
    after = x.copy()
    after[7] = 0.6 * x[7] + 0.9 * x[30]  # a move inside the plane, with a change of length
    q = np.stack([x[30], x[31], x[90]])
    train = QuerySet(["a", "b", "c"], q, [np.array([7, 3]), np.array([7]), np.array([90])],
                     [np.ones(2), np.ones(1), np.ones(1)])
    assert np.array_equal(pulling_queries(train, 7), [0, 1])
    lv = local_view(7, x, after, train, k=6)
    # every vector lies in one plane: PCA is an isometry there, so the arrow is the true move
    assert lv.explained == pytest.approx(1.0)
    assert np.linalg.norm(lv.record_after - lv.record_before) == pytest.approx(
        np.linalg.norm(after[7] - x[7]), rel=1e-5)
    assert np.array_equal(lv.query_pos, [0, 1]) and lv.queries.shape == (2, 2)
    assert lv.before_xy.shape == lv.after_xy.shape == (6, 2) and 7 not in lv.before_rows
    # neighbours by cosine similarity (not by length) in each space, the record itself left out
    for vecs, rows in ((x, lv.before_rows), (after, lv.after_rows)):
        unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        cos = unit @ unit[7]
        cos[7] = -np.inf
        assert set(rows.tolist()) == set(np.argsort(-cos)[:6].tolist())
    assert not set(lv.before_rows.tolist()) & set(lv.after_rows.tolist())  # it really moved
    with pytest.raises(ValueError, match="record row 500 is outside"):
        local_view(500, x, after, train)
