"""What every method's estimator has in common (the scikit-learn contract the registry relies on).

Each method is a :class:`FineTuner`: ``__init__`` only stores its settings (so scikit-learn's
``get_params`` / ``set_params`` / ``clone`` work), :meth:`FineTuner.fit` checks them once
(``_check_params``) and computes; fitted state ends in ``_``. Every method takes the same
``fit(records, train, val)`` inputs and leaves:

* ``index_``: an :class:`~nudge_core.index.Index` over the record vectors it searches;
* :meth:`transform_queries`: the query vectors as it searches them (identity unless the method
  changes queries); :meth:`prepare_queries` is called first with each query set searched;
* methods that need the dataset itself (its texts: model fine-tuning) set ``needs_dataset = True``
  and take ``fit(..., dataset=ds)``; :func:`~nudge_core.experiment.run_experiment` passes it to
  them only, so every other ``fit`` keeps its signature;
* ``fit_seconds_``, ``gamma_`` (None for methods without a γ), ``objective_`` (the validation
  objective it reached, or None) and :meth:`describe` (extra JSON fields for the results file).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from .errors import DataError
from .retrieval import normalize_rows


def unit_records(records: np.ndarray, normalized: np.ndarray | None = None) -> np.ndarray:
    """(n, d) float32 unit-norm records: ``normalized`` when the caller already has them (shared,
    read-only), else a fresh :func:`normalize_rows` copy of ``records``."""
    if normalized is not None:
        return normalized
    if records.ndim != 2:
        raise DataError(f"records must be a 2-D (n, d) matrix, got shape {records.shape}", "records")
    return normalize_rows(records)


class FineTuner(BaseEstimator):
    """Base class of every method (see the module docstring)."""

    gamma_ = None
    objective_ = None
    #: True: ``fit`` also takes ``dataset=`` (the :class:`~nudge_core.data.Dataset`, for its texts)
    needs_dataset = False

    def _check_params(self) -> None:
        """Raise ValueError naming the parameter and what it accepts (called first in ``fit``)."""

    def fit(self, records: np.ndarray, train, val, *, normalized: np.ndarray | None = None):
        raise NotImplementedError

    def prepare_queries(self, queries) -> None:
        """Called with a :class:`~nudge_core.data.QuerySet` before its queries are searched
        (test, OOD). A no-op for methods that transform query *vectors*; model fine-tuning
        re-encodes the texts (``queries.texts``) of queries its ``fit`` did not see."""

    def transform_queries(self, queries: np.ndarray) -> np.ndarray:
        """(n, d) float32 queries as this method searches them."""
        return np.asarray(queries, dtype=np.float32)

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """(n_queries, k) record rows this method retrieves for ``queries``, best first."""
        return self.index_.search(self.transform_queries(queries), k)[1]

    def serving_files(self) -> dict[str, np.ndarray]:
        """Arrays besides the records needed to serve this method (file name -> array), e.g. a
        query-side matrix; written next to the records by exports and ``--save-embeddings``."""
        return {}

    def describe(self) -> dict:
        """Method-specific facts for the results JSON (JSON-able values)."""
        return {}
