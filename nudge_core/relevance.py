"""One encoding of a query set's relevance judgements, built once and used by every metric.

Each (query j, relevant record row r) pair becomes the int64 code ``j << 32 | (r + 1)``; the codes
are sorted once, so the grades of any ranking (n_queries, K) are found with one vectorised
``np.searchsorted`` (row -1, "nothing retrieved", never matches). Evaluating a ranking at every
γ of a grid or a sweep then costs no Python loop over queries.
"""

from __future__ import annotations

import numpy as np

_SHIFT = np.int64(32)


class Relevance:
    """Judgements of ``n_queries`` queries over record rows in [0, 2**32 - 1).

    pair_query / pair_row / pair_grade: (n_pairs,) the relevant pairs and their grades (> 0);
    a repeated pair counts once (its first grade). Attributes: ``n_relevant`` (n_queries,) int64
    |R_j|; ``ideal`` (n_queries, max |R|) float64, each query's grades sorted descending, zero
    padded (the ideal ranking NDCG divides by).
    """

    def __init__(self, pair_query: np.ndarray, pair_row: np.ndarray, pair_grade: np.ndarray,
                 n_queries: int) -> None:
        codes = (np.asarray(pair_query, np.int64) << _SHIFT) | (np.asarray(pair_row, np.int64) + 1)
        self.codes, first = np.unique(codes, return_index=True)
        self.grades = np.asarray(pair_grade, np.float64)[first]
        queries = self.codes >> _SHIFT
        self.n_relevant = np.bincount(queries, minlength=n_queries).astype(np.int64)
        width = int(self.n_relevant.max()) if n_queries and len(self.codes) else 0
        self.ideal = np.zeros((n_queries, width))
        order = np.lexsort((-self.grades, queries))  # by query, grades descending
        starts = np.concatenate([[0], np.cumsum(self.n_relevant)[:-1]])
        slot = np.arange(len(order)) - starts[queries[order]]
        self.ideal[queries[order], slot] = self.grades[order]

    @classmethod
    def from_answers(cls, answers: list[np.ndarray], grades: list[np.ndarray]) -> "Relevance":
        """From per-query arrays of relevant rows and their grades (a QuerySet's fields)."""
        counts = np.fromiter(map(len, answers), dtype=np.int64, count=len(answers))
        rows = np.concatenate(answers) if answers else np.zeros(0, np.int64)
        g = np.concatenate(grades) if grades else np.zeros(0)
        return cls(np.repeat(np.arange(len(answers), dtype=np.int64), counts), rows, g, len(answers))

    def gains(self, top_rows: np.ndarray) -> np.ndarray:
        """(n_queries, K) float64 grade of each retrieved row (0 = not relevant or row -1).

        top_rows: (n_queries, K) int record rows, best first, one row per query in order."""
        top = np.asarray(top_rows, dtype=np.int64)
        codes = (np.arange(top.shape[0], dtype=np.int64)[:, None] << _SHIFT) | (top + 1)
        if not len(self.codes):
            return np.zeros(top.shape)
        pos = np.minimum(np.searchsorted(self.codes, codes), len(self.codes) - 1)
        return np.where(self.codes[pos] == codes, self.grades[pos], 0.0)
