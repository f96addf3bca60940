"""Baselines NUDGE is compared with: no fine-tuning, and a linear query adaptor.

The adaptor (``../shared/nudge-method.md``): a d x d matrix A applied to query embeddings only
(no bias), initialised to the identity, trained with the in-batch multiple-negatives ranking loss
(cross-entropy over ``scale * cos(A q_i, v_j)`` for the batch's (query, relevant record) pairs),
AdamW, validation top-1 accuracy checked every epoch, best matrix kept, early stop after
``patience`` epochs without improvement. Plain numpy with hand-derived gradients (checked against
finite differences in ``tests/test_baselines.py``).
"""

from __future__ import annotations

import time

import numpy as np

from .data import QuerySet
from .errors import DataError
from .estimator import FineTuner, unit_records
from .index import ExactIndex
from .progress import Progress, or_silent


class NoFineTuning(FineTuner):
    """The reference point: the original records, unit norm, searched by cosine; nothing learnt.

    Fitted: ``index_`` over the unit-norm records, ``fit_seconds_`` (normalising them, 0 when the
    caller passes ``normalized``).
    """

    def fit(self, records: np.ndarray, train: QuerySet, val: QuerySet, *,
            normalized: np.ndarray | None = None) -> "NoFineTuning":
        t0 = time.perf_counter()
        self.index_ = ExactIndex(unit_records(records, normalized))
        self.fit_seconds_ = 0.0 if normalized is not None else time.perf_counter() - t0
        return self


def _softmax_rows(s: np.ndarray) -> np.ndarray:
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)


def mnrl_loss_and_grad(a: np.ndarray, q: np.ndarray, r: np.ndarray,
                       scale: float) -> tuple[float, np.ndarray]:
    """Multiple-negatives ranking loss of one batch and its gradient with respect to ``a``.

    a: (d, d); q: (B, d) queries; r: (B, d) unit-norm relevant records (pair i = row i).
    Loss = mean_i -log softmax_j(scale * cos(a q_i, r_j))[i].
    """
    z = q @ a.T
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    norms = np.where(norms > 0, norms, 1.0)  # no 1e-12 floor: tiny queries keep their direction
    zh = z / norms
    p = _softmax_rows(scale * zh @ r.T)
    b = len(q)
    loss = float(-np.log(np.maximum(p[np.arange(b), np.arange(b)], 1e-300)).mean())
    d_s = p.copy()
    d_s[np.arange(b), np.arange(b)] -= 1
    d_s /= b
    d_zh = scale * d_s @ r
    d_z = (d_zh - zh * np.sum(d_zh * zh, axis=1, keepdims=True)) / norms
    return loss, d_z.T @ q


class LinearAdaptor(FineTuner):
    """Linear query adaptor trained with AdamW on in-batch negatives.

    Parameters: ``lr`` (1e-3), ``batch_size`` (256 pairs), ``max_epochs`` (200), ``patience``
    (epochs without a better validation top-1 accuracy before stopping, 10), ``scale`` (20),
    ``weight_decay`` (0.01), ``seed`` (0), ``progress`` (called ``(fraction, message)`` after
    each epoch; fraction = epochs done / ``max_epochs``, an upper bound since early stopping may
    end sooner; an exception it raises, such as a cancel, stops the fit).

    Fitted: ``matrix_`` (d, d) float32, ``fit_seconds_``, ``val_curve_`` ((epochs + 1, 2): epoch,
    validation top-1 accuracy; epoch 0 = identity), ``best_epoch_``, ``objective_``.
    """

    def __init__(self, lr: float = 1e-3, batch_size: int = 256, max_epochs: int = 200,
                 patience: int = 10, scale: float = 20.0, weight_decay: float = 0.01,
                 seed: int = 0, progress: Progress | None = None) -> None:
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.scale = scale
        self.weight_decay = weight_decay
        self.seed = seed
        self.progress = progress

    def _check_params(self) -> None:
        for name, low in (("batch_size", 2), ("max_epochs", 1), ("patience", 1)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name in ("lr", "scale", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def transform_queries(self, queries: np.ndarray) -> np.ndarray:
        """(n, d) float32 adapted queries ``A q``."""
        return np.asarray(queries, dtype=np.float32) @ self.matrix_.T

    def _val_accuracy(self, a: np.ndarray, val: QuerySet) -> float:
        rows = self.index_.search(np.asarray(val.emb, np.float32) @ a.T.astype(np.float32), 1)[1]
        return float(np.mean(val.relevance.gains(rows)[:, 0] > 0))

    def fit(self, records: np.ndarray, train: QuerySet, val: QuerySet, *,
            normalized: np.ndarray | None = None) -> "LinearAdaptor":
        """records: (n, d) float32 (any norm); ``normalized``: their unit-norm copy when the
        caller has one (read only; searched, never written). Returns self."""
        self._check_params()
        if len(train) == 0 or len(val) == 0:
            raise DataError("the adaptor needs training and validation queries", "split")
        report = or_silent(self.progress)
        t0 = time.perf_counter()
        self.index_ = ExactIndex(unit_records(records, normalized))
        rng = np.random.default_rng(self.seed)
        pair_q, pair_r = train.pairs()
        q_all = np.asarray(train.emb, dtype=np.float64)
        relevant, r_pos = np.unique(pair_r, return_inverse=True)
        r_all = self.index_.take(relevant).astype(np.float64)
        d = q_all.shape[1]
        a = np.eye(d)
        m1, m2 = np.zeros_like(a), np.zeros_like(a)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        best_acc = self._val_accuracy(a, val)
        best, best_epoch, step, waited = a.copy(), 0, 0, 0
        curve = [(0, best_acc)]
        for epoch in range(1, self.max_epochs + 1):
            order = rng.permutation(len(pair_q))
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                if len(batch) < 2:
                    continue
                _, grad = mnrl_loss_and_grad(a, q_all[pair_q[batch]], r_all[r_pos[batch]],
                                             self.scale)
                step += 1
                a *= 1 - self.lr * self.weight_decay
                m1 = beta1 * m1 + (1 - beta1) * grad
                m2 = beta2 * m2 + (1 - beta2) * grad * grad
                a -= self.lr * (m1 / (1 - beta1 ** step)) / (np.sqrt(m2 / (1 - beta2 ** step)) + eps)
            acc = self._val_accuracy(a, val)
            curve.append((epoch, acc))
            report(epoch / self.max_epochs, f"epoch {epoch}: validation top-1 {acc:.3f}")
            if acc > best_acc:
                best_acc, best, best_epoch, waited = acc, a.copy(), epoch, 0
            else:
                waited += 1
                if waited >= self.patience:
                    break
        self.matrix_ = best.astype(np.float32)
        self.best_epoch_ = best_epoch
        self.objective_ = best_acc
        self.val_curve_ = np.array(curve, dtype=np.float64)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def serving_files(self) -> dict[str, np.ndarray]:
        """``query_adaptor.npy``: the (d, d) float32 matrix A, applied to queries as ``q @ A.T``."""
        return {"query_adaptor.npy": self.matrix_}

    def describe(self) -> dict:
        return {"validation_curve": self.val_curve_.tolist(), "best_epoch": self.best_epoch_}
