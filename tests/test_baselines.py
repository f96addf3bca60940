"""The linear query adaptor: gradient correctness, identity start, learning on learnable data."""

from __future__ import annotations

import numpy as np
import pytest

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
    est = LinearAdaptor(max_epochs=30, patience=5).fit(ds.corpus_emb, tr, va)
    assert est.matrix_.shape == (16, 16)
    assert est.fit_seconds_ > 0
    accs = est.val_curve_[:, 1]
    assert est.objective_ == accs.max() >= accs[0]           # never worse than the identity
    assert est.val_curve_[est.best_epoch_, 1] == est.objective_
    if est.best_epoch_ == 0:
        assert np.allclose(est.matrix_, np.eye(16))


def test_adaptor_learns_a_query_side_rotation():
    """Queries are a fixed rotation of their answers: the identity ranks poorly, the adaptor must
    learn the inverse map and lift validation top-1 accuracy far above no fine-tuning."""
    from nudge_core.baselines import NoFineTuning
    from nudge_core.data import dataset_from_arrays

    rng = np.random.default_rng(4)
    dim, n = 8, 120
    records = normalize_rows(rng.standard_normal((n, dim)).astype(np.float32))
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    answer = rng.integers(0, n, 400)
    queries = (records[answer] @ rotation.T + 0.05 * rng.standard_normal((400, dim))).astype(np.float32)
    ds = dataset_from_arrays(records, queries, {str(j): {str(a): 1} for j, a in enumerate(answer)})
    sp = paper_split(ds.labelled_ids, seed=0)
    tr, va = ds.queries(sp.train), ds.queries(sp.val)
    before = NoFineTuning().fit(ds.corpus_emb, tr, va).search(va.emb, 1)
    before_acc = float(np.mean(va.relevance.gains(before)[:, 0] > 0))
    est = LinearAdaptor(lr=0.02, batch_size=32, max_epochs=200, patience=30).fit(ds.corpus_emb, tr, va)
    assert est.val_curve_[0, 1] == pytest.approx(before_acc)
    assert before_acc < 0.3 and est.objective_ > before_acc + 0.4, (before_acc, est.objective_)


def test_adaptor_reports_each_epoch_and_stops_when_progress_raises():
    ds = make_dataset(n_records=300, dim=16, n_queries=200, seed=2)
    sp = paper_split(ds.labelled_ids, seed=0)
    tr, va = ds.queries(sp.train), ds.queries(sp.val)
    seen = []
    est = LinearAdaptor(max_epochs=8, patience=8, progress=lambda f, m: seen.append((f, m)))
    est.fit(ds.corpus_emb, tr, va)
    assert [f for f, _ in seen] == [e / 8 for e in range(1, len(est.val_curve_))]
    assert seen[0][1].startswith("epoch 1: validation top-1 ")

    class Stop(Exception):
        pass

    def stop(fraction, message):
        raise Stop(message)

    with pytest.raises(Stop, match="epoch 1"):
        LinearAdaptor(max_epochs=8, progress=stop).fit(ds.corpus_emb, tr, va)


def test_run_experiment_passes_progress_into_the_adaptors_fit():
    from nudge_core.experiment import run_experiment
    from nudge_core.runspec import RunSpec

    ds = make_dataset(n_records=300, dim=16, n_queries=200, seed=2)
    sp = paper_split(ds.labelled_ids, seed=0)
    seen = []
    run_experiment(ds, sp, RunSpec(ds.name, methods=("none", "adaptor")),
                   progress=lambda f, m: seen.append((f, m)))
    inner = [f for f, m in seen if m.startswith("adaptor: epoch 1:")]
    assert inner and 0.5 <= inner[0] <= 0.95  # inside the second method's share of the run
