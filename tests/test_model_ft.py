"""Model fine-tuning plumbing (nudge_core.model_ft) with a fake encoder whose numbers are known.

Records r0..r3 start as the unit vectors e0..e3 and query word q<i> as e<i> (tests/fake_encoder.py),
so every objective and metric below is computed by hand. The real model is exercised in
tests/test_model_ft_real.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from optional import needs

torch = needs("torch")
needs("sentence_transformers")

from fake_encoder import FakeEncoder  # noqa: E402
from nudge_core import registry  # noqa: E402
from nudge_core.data import dataset_from_arrays  # noqa: E402
from nudge_core.errors import DataError  # noqa: E402
from nudge_core.experiment import run_experiment  # noqa: E402
from nudge_core.model_ft import FullFineTune  # noqa: E402
from nudge_core.runspec import RunSpec  # noqa: E402
from nudge_core.splits import Split  # noqa: E402
from nudge_core.text_embed import Cancelled  # noqa: E402

RECORDS = {f"r{i}": f"r{i}" for i in range(4)}
QUERIES = {  # id: (text, relevant record)
    **{f"t{i}": ("q0", "r1") if i % 2 == 0 else ("q2", "r2") for i in range(8)},  # q0 -> r1
    "keep0": ("q0", "r0"), "keep1": ("q1", "r1"),   # validation that training makes worse
    "swap0": ("q0", "r1"), "swap1": ("q1", "r1"),   # validation that training makes better
    "x0": ("q2", "r2"), "x1": ("q3 q3 q3 q0", "r0"),  # test: ranks 1 and 2
}
TRAIN = [f"t{i}" for i in range(8)]


def make_dataset():
    enc = FakeEncoder()
    corpus = enc.encode(list(RECORDS.values()), normalize_embeddings=True)
    queries = enc.encode([t for t, _ in QUERIES.values()], normalize_embeddings=True)
    data = dataset_from_arrays(corpus, queries, {q: {r: 1} for q, (_, r) in QUERIES.items()},
                               list(RECORDS), list(QUERIES), name="fake")
    data.corpus_text = dict(RECORDS)
    data.query_text = {q: t for q, (t, _) in QUERIES.items()}
    return data


@pytest.fixture()
def ds():
    return make_dataset()


def fit(data, val, **kw) -> FullFineTune:
    settings = dict(epochs=3, batch_size=8, lr=0.5, threads=1, model=FakeEncoder())
    settings.update(kw)
    return FullFineTune(**settings).fit(data.corpus_emb, data.queries(TRAIN), data.queries(val),
                                       dataset=data)


class FakeFT(FullFineTune):
    """full-ft on the fake encoder with a learning rate too small to move anything."""

    def __init__(self, epochs: int = 1, batch_size: int = 8) -> None:
        super().__init__(epochs=epochs, batch_size=batch_size, lr=1e-12, threads=1,
                         model=FakeEncoder())


@pytest.fixture()
def fake_method():
    registry.register(registry.MethodSpec(
        "fake-ft", "fake fine-tuning", "#000000", FakeFT, changes="records", metric="cos",
        objective="validation hit@1", default=False))
    yield "fake-ft"
    registry.unregister("fake-ft")


def test_run_experiment_passes_the_dataset_and_metrics_match_hand_computation(ds, fake_method):
    split = Split(TRAIN, ["keep0", "keep1"], ["x0", "x1"])
    seen = []
    result = run_experiment(ds, split, RunSpec("fake", methods=("none", fake_method)),
                            progress=lambda f, m: seen.append((f, m)))
    inner = [f for f, m in seen if m.startswith("fake-ft: epoch 1/1: batch 1/1")]
    assert inner and all(0.5 < f < 0.95 for f in inner)  # inside the second method's share
    est = result.methods[fake_method].estimator
    # x0 finds r2 first (NDCG 1); x1 = (3 e3 + e0)/4 finds r3, then r0 (NDCG 1/log2(3))
    expected = (1 + 1 / math.log2(3)) / 2
    assert result.methods[fake_method].metrics["ndcg@10"] == pytest.approx(expected, abs=1e-6)
    assert result.methods["none"].metrics["ndcg@10"] == pytest.approx(expected, abs=1e-6)
    assert est.val_curve_[0].tolist() == [0.0, 1.0]  # both validation queries hit at epoch 0
    assert est.trainable_parameters_ == 9 * 4  # 8 words + padding row, dimension 4
    entry = result.to_json()["methods"][fake_method]
    assert entry["epochs_run"] == 1 and entry["best_epoch"] == 0
    assert entry["train_seconds"] >= 0 and entry["encode_seconds"] > 0


def test_training_changes_embeddings_and_the_reencoded_corpus_is_searched(ds):
    est = fit(ds, ["swap0", "swap1"])
    assert est.val_curve_[0, 1] == 0.5  # by hand: q0 finds r0 first (r1 is relevant), q1 finds r1
    assert est.objective_ == 1.0 and est.best_epoch_ >= 1
    tuned = est.model_.encode(list(RECORDS.values()), normalize_embeddings=True)
    np.testing.assert_allclose(est.index_.vectors, tuned, atol=1e-6)
    assert np.abs(est.index_.vectors - ds.corpus_emb).max() > 0.1
    test = ds.queries(["x0", "x1"])
    np.testing.assert_allclose(
        est.transform_queries(test.emb),
        est.model_.encode(["q2", "q3 q3 q3 q0"], normalize_embeddings=True), atol=1e-6)


def test_early_stopping_keeps_the_best_epoch(ds):
    est = fit(ds, ["keep0", "keep1"], patience=1)
    assert est.val_curve_[0, 1] == 1.0 and est.val_curve_[1, 1] < 1.0
    assert est.epochs_run_ == 1 and est.best_epoch_ == 0 and est.objective_ == 1.0
    # epoch 0 restored: the untrained records and queries, not epoch 1's
    np.testing.assert_allclose(est.index_.vectors, ds.corpus_emb, atol=1e-6)
    np.testing.assert_allclose(est.model_.encode(list(RECORDS.values()), normalize_embeddings=True),
                               ds.corpus_emb, atol=1e-6)
    test = ds.queries(["x0", "x1"])
    np.testing.assert_allclose(est.transform_queries(test.emb), test.emb, atol=1e-6)


def test_same_seed_same_result(ds):
    a, b = fit(ds, ["swap0", "swap1"]), fit(ds, ["swap0", "swap1"])
    np.testing.assert_array_equal(a.index_.vectors, b.index_.vectors)
    np.testing.assert_array_equal(a.val_curve_, b.val_curve_)


def test_unknown_queries_are_refused(ds):
    est = fit(ds, ["swap0", "swap1"], epochs=1)
    with pytest.raises(DataError, match="1 of 1 queries are not queries of the fitted dataset"):
        est.transform_queries(np.full((1, 4), 0.5, np.float32))


def test_needs_texts_and_the_dataset(ds):
    train, val = ds.queries(TRAIN), ds.queries(["keep0"])
    with pytest.raises(DataError, match="call fit"):
        FullFineTune(model=FakeEncoder()).fit(ds.corpus_emb, train, val)
    ds.corpus_text = None
    with pytest.raises(DataError, match="needs the dataset's texts"):
        FullFineTune(model=FakeEncoder()).fit(ds.corpus_emb, train, val, dataset=ds)
    ds.corpus_text = {**RECORDS, "r2": "  "}
    with pytest.raises(DataError, match="1 records have no text, e.g. 'r2'"):
        FullFineTune(model=FakeEncoder()).fit(ds.corpus_emb, train, val, dataset=ds)


@pytest.mark.parametrize("kw, match", [({"epochs": 0}, "epochs must be an integer >= 1"),
                                       ({"batch_size": 1}, "batch_size must be an integer >= 2"),
                                       ({"lr": -1.0}, "lr must be a finite number > 0")])
def test_bad_settings(ds, kw, match):
    with pytest.raises(ValueError, match=match):
        fit(ds, ["keep0"], **kw)


def test_cancel_stops_between_batches(ds):
    with pytest.raises(Cancelled, match="cancelled"):
        fit(ds, ["keep0"], should_stop=lambda: True)


def test_registered_off_by_default_with_cli_flags():
    from nudge_core.cli import build_parser

    assert {"full-ft", "lora"} <= set(registry.names())
    assert not {"full-ft", "lora"} & set(registry.default_names())
    args = build_parser().parse_args(["run", "data", "--methods", "nudge-n,full-ft,lora",
                                      "--epochs", "2", "--batch-size", "16", "--lora-rank", "4"])
    spec = RunSpec.from_args(args)
    params = {m.name: m.params for m in spec.methods}
    assert params["full-ft"] == {"epochs": 2, "batch_size": 16}
    assert params["lora"] == {"epochs": 2, "batch_size": 16, "lora_rank": 4}
    assert spec.methods[2].build().batch_size == 16


def _ood_set(texts: dict | None):
    """Two queries the dataset does not have, with vectors of their own (as an OOD set loaded
    from a second folder has): 'q3 q2' (relevant r3) and 'q1' (relevant r1)."""
    from nudge_core.data import QuerySet

    emb = FakeEncoder().encode(["q3 q2", "q1"], normalize_embeddings=True) * 0.5  # unseen rows
    return QuerySet(["o0", "o1"], emb, [np.array([3]), np.array([1])], [np.array([1]), np.array([1])],
                    texts=texts)


def test_unseen_queries_are_encoded_from_their_texts(ds):
    est = fit(ds, ["swap0", "swap1"])
    ood = _ood_set({"o0": "q3 q2", "o1": "q1"})
    est.prepare_queries(ood)
    np.testing.assert_allclose(est.transform_queries(ood.emb),
                               est.model_.encode(["q3 q2", "q1"], normalize_embeddings=True), atol=1e-6)
    with pytest.raises(DataError, match="2 of 2 queries have no text .*'o0'"):
        fit(ds, ["swap0", "swap1"]).prepare_queries(_ood_set(None))


def test_run_experiment_evaluates_a_separate_ood_set_with_texts(ds, fake_method):
    split = Split(TRAIN, ["keep0", "keep1"], ["x0", "x1"])
    result = run_experiment(ds, split, RunSpec("fake", methods=("none", fake_method)),
                            ood=_ood_set({"o0": "q3 q2", "o1": "q1"}))
    # lr 1e-12: the model is unchanged, so it ranks the OOD queries as no fine-tuning does
    # ('q3 q2' -> r3 or r2 first: NDCG 1 or 1/log2(3); 'q1' -> r1 first: NDCG 1)
    got = result.methods[fake_method].ood_metrics["ndcg@10"]
    assert got == pytest.approx(result.methods["none"].ood_metrics["ndcg@10"], abs=1e-6)
    assert got >= (1 / math.log2(3) + 1) / 2 - 1e-6


def test_the_bundled_example_has_its_record_texts_rebuilt():
    from pathlib import Path

    from nudge_core.data import load_dataset
    from nudge_core.examples.stdlib_docs import record_text, rebuilt_texts

    root = Path(__file__).resolve().parents[1] / "sample_data" / "stdlib"
    bundled = load_dataset(root)
    assert bundled.corpus_text is None  # the example stores no documentation
    texts = rebuilt_texts(bundled)
    assert len(texts) >= 0.95 * bundled.n_records
    rid = bundled.corpus_ids[123]
    assert texts[rid] == record_text(rid)
    assert rebuilt_texts(make_dataset()) is None
    # every record has its text in a plain interpreter (pytest replaces sys.unraisablehook and
    # threading.excepthook, whose docstrings are record texts, so this runs in a subprocess)
    import subprocess
    import sys

    code = ("from nudge_core.data import load_dataset; from nudge_core.model_ft import FullFineTune; "
            f"d = load_dataset({str(root)!r}); q = d.queries(d.query_ids[:4]); "
            "c, _ = FullFineTune()._texts(d.corpus_emb, q, q, d); "
            "print(len(c) == d.n_records and list(c) == d.corpus_ids)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True", out.stderr[-2000:]
