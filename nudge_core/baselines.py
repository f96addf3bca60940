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
from .retrieval import search


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
    norms = np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
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


class LinearAdaptor:
    """Linear query adaptor trained with AdamW on in-batch negatives.

    Parameters: ``lr`` (1e-3), ``batch_size`` (256 pairs), ``max_epochs`` (200), ``patience``
    (epochs without a better validation top-1 accuracy before stopping, 10), ``scale`` (20),
    ``weight_decay`` (0.01), ``seed`` (0).

    Fitted: ``matrix_`` (d, d) float32, ``fit_seconds_``, ``val_curve_`` ((epochs + 1, 2): epoch,
    validation top-1 accuracy; epoch 0 = identity), ``best_epoch_``, ``objective_``.
    """

    method = "adaptor"
    metric = "cos"

    def __init__(self, lr: float = 1e-3, batch_size: int = 256, max_epochs: int = 200,
                 patience: int = 10, scale: float = 20.0, weight_decay: float = 0.01,
                 seed: int = 0) -> None:
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.scale = scale
        self.weight_decay = weight_decay
        self.seed = seed

    def transform_queries(self, queries: np.ndarray) -> np.ndarray:
        """(n, d) float32 adapted queries ``A q``."""
        return np.asarray(queries, dtype=np.float32) @ self.matrix_.T

    def _val_accuracy(self, a: np.ndarray, normalized: np.ndarray, val: QuerySet) -> float:
        _, rows = search(np.asarray(val.emb, np.float32) @ a.T.astype(np.float32), normalized, 1)
        return float(np.mean([rows[j, 0] in set(val.answers[j].tolist()) for j in range(len(val))]))

    def fit(self, normalized: np.ndarray, train: QuerySet, val: QuerySet) -> "LinearAdaptor":
        """normalized: (n, d) float32 unit-norm records. Returns self."""
        if len(train) == 0 or len(val) == 0:
            raise DataError("the adaptor needs training and validation queries", "split")
        t0 = time.perf_counter()
        rng = np.random.default_rng(self.seed)
        pair_q, pair_r = train.pairs()
        q_all = np.asarray(train.emb, dtype=np.float64)
        relevant, r_pos = np.unique(pair_r, return_inverse=True)
        r_all = np.asarray(normalized[relevant], dtype=np.float64)
        d = q_all.shape[1]
        a = np.eye(d)
        m1, m2 = np.zeros_like(a), np.zeros_like(a)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        best_acc = self._val_accuracy(a, normalized, val)
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
            acc = self._val_accuracy(a, normalized, val)
            curve.append((epoch, acc))
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
