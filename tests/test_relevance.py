"""The shared relevance encoding against the plain per-query definition."""

from __future__ import annotations

import numpy as np

from nudge_core.relevance import Relevance


def test_gains_and_ideal_equal_a_per_query_lookup():
    rng = np.random.default_rng(5)
    answers = [rng.choice(50, size=rng.integers(0, 6), replace=False) for _ in range(40)]
    grades = [rng.integers(1, 4, len(a)).astype(float) for a in answers]
    top = np.stack([rng.permutation(np.arange(-1, 50))[:7] for _ in range(40)])
    rel = Relevance.from_answers(answers, grades)
    expected = np.array([[dict(zip(a.tolist(), g.tolist())).get(int(r), 0.0) for r in row]
                         for a, g, row in zip(answers, grades, top)])
    assert np.array_equal(rel.gains(top), expected)
    assert rel.n_relevant.tolist() == [len(a) for a in answers]
    for j, g in enumerate(grades):
        assert rel.ideal[j, :len(g)].tolist() == sorted(g.tolist(), reverse=True)
        assert not rel.ideal[j, len(g):].any()


def test_repeated_pairs_count_once_and_empty_sets():
    rel = Relevance(np.array([0, 0, 1]), np.array([3, 3, 0]), np.array([2.0, 5.0, 1.0]), 3)
    assert rel.n_relevant.tolist() == [1, 1, 0]
    assert rel.gains(np.array([[3, -1], [0, 3], [-1, 0]])).tolist() == [[2, 0], [1, 0], [0, 0]]
    empty = Relevance.from_answers([], [])
    assert empty.gains(np.zeros((0, 4), np.int64)).shape == (0, 4)
