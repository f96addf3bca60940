"""The linear query adaptor: gradient correctness, identity start, learning on learnable data."""

from __future__ import annotations

import numpy as np

from nudge_core.baselines import LinearAdaptor, mnrl_loss_and_grad
from nudge_core.retrieval import normalize_rows
from nudge_core.splits import paper_split
from synthetic import make_dataset


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    a = np.eye(5) + 0.1 * rng.standard_normal((5, 5))
    q = rng.standard_normal((6, 5))
    r = normalize_rows(rng.standard_normal((6, 5))).astype(np.float64)
    _, grad = mnrl_loss_and_grad(a, q, r, 20.0)
    num = np.zeros_like(a)
    for i in range(5):
        for j in range(5):
            d = np.zeros_like(a)
            d[i, j] = 1e-6
            num[i, j] = (mnrl_loss_and_grad(a + d, q, r, 20.0)[0]
                         - mnrl_loss_and_grad(a - d, q, r, 20.0)[0]) / 2e-6
    assert np.allclose(grad, num, atol=1e-5)


def test_adaptor_keeps_best_checkpoint_and_reports_time():
    ds = make_dataset(n_records=300, dim=16, n_queries=200, seed=2)
    sp = paper_split(ds.labelled_ids, seed=0)
    tr, va = ds.queries(sp.train), ds.queries(sp.val)
    est = LinearAdaptor(max_epochs=30, patience=5).fit(normalize_rows(ds.corpus_emb), tr, va)
    assert est.matrix_.shape == (16, 16)
    assert est.fit_seconds_ > 0
    accs = est.val_curve_[:, 1]
    assert est.objective_ == accs.max() >= accs[0]           # never worse than the identity
    assert est.val_curve_[est.best_epoch_, 1] == est.objective_
    if est.best_epoch_ == 0:
        assert np.allclose(est.matrix_, np.eye(16))
