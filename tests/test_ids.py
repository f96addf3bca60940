"""IdList / IdLookup (nudge_core.ids) and read_id_list built on them: list behaviour, the same
errors as the old line-by-line reader, and the memory they cost."""

from __future__ import annotations

import gc
import json
import pickle
import random
import tracemalloc
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from nudge_core import files, ids as ids_mod
from nudge_core.comparison import _rows, _sha, _text, dataset_fingerprint
from nudge_core.data import Dataset, dataset_from_arrays
from nudge_core.errors import DataError
from nudge_core.files import excerpt, read_id_list, read_text_lines
from nudge_core.ids import IdList, IdLookup

LONG = "L" * 200
SHORT = ["d1", "é☃", "q\"\\", "z", "中文"]


def old_read_id_list(path: Path, max_bytes: int | None = None) -> list[str]:
    """The reader before IdList (a list and a ``seen`` dict): the reference for messages."""
    lines = read_text_lines(path, max_bytes)
    if not lines:
        raise DataError("the id list is empty; expected one id per line", str(path))
    seen: dict[str, int] = {}
    out = []
    for number, raw in enumerate(lines, start=1):
        ident = raw.strip()
        if not ident:
            raise DataError("blank id; expected one non-empty id per line", str(path), line=number)
        if ident in seen:
            raise DataError(f"duplicate id {excerpt(ident)} (first on line {seen[ident]})", str(path),
                            line=number)
        seen[ident] = number
        out.append(ident)
    return out


@pytest.fixture(params=["fixed", "variable"])
def case(request) -> tuple[list[str], IdList]:
    """Short ids (stored ``S<w>``), or short ids plus one of 200 characters (StringDType: ``S200``
    would cost 200 bytes on every row)."""
    src = SHORT + [f"d{i:07d}" for i in range(100)]
    if request.param == "variable":
        src.insert(3, LONG)
    ids = IdList(src)
    assert ids.fixed_width == (request.param == "fixed")
    return src, ids


def test_sequence_behaves_like_the_list(case):
    src, ids = case
    assert isinstance(ids, Sequence) and len(ids) == len(src)
    assert ids[0] == "d1" and type(ids[0]) is str and ids[1] == "é☃" and ids[2] == 'q"\\'
    assert ids[-1] == src[-1] == "d0000099" and ids[-len(src)] == "d1"
    assert ids[np.int64(1)] == "é☃"  # rows come from numpy (exports, model_ft)
    with pytest.raises(ValueError, match="read-only"):
        ids.array[0] = ids.array[1]
    with pytest.raises(IndexError, match="out of range"):
        ids[len(src)]
    with pytest.raises(IndexError, match="out of range"):
        ids[-len(src) - 1]
    assert ids[1:4] == src[1:4] and ids[::-7] == src[::-7] and isinstance(ids[1:4], list)
    assert list(ids) == src and all(type(s) is str for s in ids)
    assert "\n".join(ids) == "\n".join(src)
    assert ids == src and src == ids and ids == tuple(src) and ids == IdList(src)
    assert ids != src[:-1] and ids != src[:-1] + ["other"] and ids != "".join(src)
    assert "é☃" in ids and "d0000050" in ids and "d0000100" not in ids and 3 not in ids
    assert ids.index("d0000007") == src.index("d0000007")
    assert pickle.loads(pickle.dumps(ids)) == src
    assert "IdList(" in repr(ids)


def test_the_200_character_id_does_not_widen_every_row(case):
    src, ids = case
    if LONG in src:
        assert ids[3] == LONG and ids.lookup[LONG] == 3
        assert ids.nbytes < 16 * len(src) + 300  # S200 would be 200 * len(src)
    else:
        assert ids.nbytes == 8 * len(src)  # widest: "d0000000", 8 UTF-8 bytes


def test_lookup_is_a_mapping_without_a_dict(case):
    src, ids = case
    lookup = ids.lookup
    assert isinstance(lookup, Mapping) and isinstance(lookup, IdLookup) and len(lookup) == len(src)
    assert all(lookup[s] == i for i, s in enumerate(src))
    assert lookup["中文"] == src.index("中文") and lookup.get("d0000000") == src.index("d0000000")
    with pytest.raises(KeyError, match="nope"):
        lookup["nope"]
    assert lookup.get("nope") is None and lookup.get("nope", -1) == -1
    for absent in ("d", "d00000000", "L" * 201, "d1\x00", "\ud800", 5, None):
        assert absent not in lookup
    assert list(lookup) == src and dict(lookup.items()) == {s: i for i, s in enumerate(src)}
    rows = lookup.rows(["z", "nope", "d1", "d0000099", "x" * 300])
    assert rows.tolist() == [3 + (LONG in src), -1, 0, len(src) - 1, -1]
    assert lookup.missing(["z", "nope", "中文"]) == {"nope"}
    assert lookup.nbytes == 8 * len(src)


def test_a_dropped_list_is_freed_without_the_cycle_collector():
    ids = IdList(["a", "b"])
    lookup, ref = ids.lookup, weakref.ref(ids)
    gc.disable()
    try:
        del ids
        assert ref() is None  # the lookup does not point back at the list
    finally:
        gc.enable()
    assert list(lookup) == ["a", "b"] and lookup["b"] == 1


def test_odd_ids_nul_and_lone_surrogate():
    # a NUL is refused (numpy 2.4 sorts StringDType wrongly around NULs: ids like these were not found)
    with pytest.raises(ValueError, match="row 1 holds a NUL character"):
        IdList(["\xff", "\x00\x00a"])
    with pytest.raises(ValueError, match="row 0 holds a NUL character"):
        IdList(["a\x00", "a", "b"])
    with pytest.raises(ValueError, match="row 1 holds a lone surrogate"):
        IdList(["ok", "bad\ud800"])
    assert IdList.numbered(12) == [str(i) for i in range(12)] and len(IdList.numbered(0)) == 0
    assert IdList([]) == [] and "x" not in IdList([])


@pytest.mark.parametrize("chunk", [2, 65536])
def test_json_chunks_hash_as_json_dumps(case, monkeypatch, chunk):
    src, ids = case
    monkeypatch.setattr(ids_mod, "CHUNK", chunk)
    expected = json.dumps(src, sort_keys=True, ensure_ascii=False).encode("utf-8")
    assert b"".join(ids.json_chunks()) == expected
    assert b"".join(IdList([]).json_chunks()) == b"[]"


def test_dataset_converts_lists_and_keeps_its_fingerprint():
    rng = np.random.default_rng(0)
    corpus, queries = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(2, 3))
    ds = dataset_from_arrays(corpus, queries, {"q1": {"é": 1, "d2": 2}},
                             corpus_ids=["a", "é", "d2", 3, "x", "y"], query_ids=["q0", "q1"])
    assert isinstance(ds.corpus_ids, IdList) and ds.corpus_ids == ["a", "é", "d2", "3", "x", "y"]
    assert ds.record_row["3"] == 3 and ds.query_row["q1"] == 1
    qs = ds.queries(["q1"])
    assert qs.answers[0].tolist() == [1, 2] and qs.grades[0].tolist() == [1.0, 2.0]
    old = _sha(_rows(ds.corpus_emb), _rows(ds.query_emb), _text(list(ds.corpus_ids)),
               _text(list(ds.query_ids)), _text(ds.qrels))
    assert dataset_fingerprint(ds) == old
    plain = Dataset(name="n", model="m", corpus_ids=list(ds.corpus_ids), corpus_emb=corpus,
                    query_ids=["q0", "q1"], query_emb=ds.query_emb, qrels=ds.qrels)
    assert isinstance(plain.corpus_ids, IdList) and plain.record_row["y"] == 5
    with pytest.raises(DataError, match="corpus_ids.*lone surrogate"):
        dataset_from_arrays(corpus, queries, {"q1": {"a": 1}}, corpus_ids=list("abcde") + ["\udc00"])
    with pytest.raises(DataError, match="duplicate id 'b'"):
        dataset_from_arrays(corpus, queries, {"q1": {"a": 1}}, corpus_ids=list("abcbcd"))


def _random_lines(rng: random.Random) -> list[str]:
    """Ids with planted duplicates, blanks, padding and CRs (sometimes none of them)."""
    pool = ["d%d" % rng.randrange(10**6) for _ in range(rng.randrange(1, 60))]
    pool = list(dict.fromkeys(pool))
    if rng.random() < 0.3:
        pool.insert(rng.randrange(len(pool) + 1), rng.choice(["é" * 40, "x" * 200, "中" + "y" * 30]))
    lines = list(pool)
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        kind = rng.choice(["dup", "blank", "pad", "cr", "dupstrip"])
        at = rng.randrange(len(lines) + 1)
        if kind == "dup":
            lines.insert(at, rng.choice(pool))
        elif kind == "blank":
            lines.insert(at, rng.choice(["", "  ", "\t", "\r"]))
        elif kind == "pad" and lines:
            i = rng.randrange(len(lines))
            lines[i] = " " + lines[i] + "\t"
        elif kind == "cr" and lines:
            i = rng.randrange(len(lines))
            lines[i] += "\r"
        elif kind == "dupstrip":
            lines.insert(at, " " + rng.choice(pool) + " ")
    return lines


def _outcome(reader, path: Path):
    try:
        return list(reader(path))
    except DataError as exc:
        return str(exc)


@pytest.mark.parametrize("chunk_bytes", [5, 1 << 20])
def test_read_id_list_reports_what_the_old_reader_reported(tmp_path, monkeypatch, chunk_bytes):
    monkeypatch.setattr(files, "ID_CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(ids_mod, "CHUNK", 3)  # many chunks in the build and the duplicate scan
    rng = random.Random(16)
    errors = 0
    for trial in range(300):
        lines = _random_lines(rng)
        body = "\n".join(lines) + rng.choice(["\n", "", "\n\n"])
        raw = (b"\xef\xbb\xbf" if trial % 7 == 0 else b"") + body.encode("utf-8")
        path = tmp_path / f"ids{trial}.txt"
        path.write_bytes(raw)
        new, old = _outcome(read_id_list, path), _outcome(old_read_id_list, path)
        assert new == old, (lines, new, old)
        errors += isinstance(old, str)
    assert 50 < errors < 250  # both outcomes were exercised


@pytest.mark.parametrize("raw", [b"", b"\xef\xbb\xbf", b"\n", b"a\nb\x00\nc\n\xff\n", b"a\x00\nb\n",
                                 b"a\nb\n" * 10 + b"\xc3\n", b"a\n\xe2\x98\nb", b"a\r\nb\r\n\r\n"])
def test_read_id_list_file_errors_unchanged(tmp_path, monkeypatch, raw):
    monkeypatch.setattr(files, "ID_CHUNK_BYTES", 3)
    path = tmp_path / "ids.txt"
    path.write_bytes(raw)
    old = _outcome(old_read_id_list, path)
    assert _outcome(read_id_list, path) == old and isinstance(old, str)


def test_reading_a_million_ids_costs_under_40_bytes_each(tmp_path):
    """tracemalloc sees numpy's buffers and Python's objects alike; the old reader (a list of
    lines, a list of ids and a dict) peaks at well over 150 bytes per id here."""
    n = 1_000_000
    path = tmp_path / "ids.txt"
    path.write_bytes(b"".join(b"d%07d\n" % i for i in range(n)))
    tracemalloc.start()
    try:
        ids = read_id_list(path)
        assert ids.lookup["d0999999"] == n - 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * n, f"{peak / n:.1f} bytes per id at the peak"
    assert ids.nbytes + ids.lookup.nbytes == 16 * n and ids.fixed_width
    assert ids[123456] == "d0123456" and len(ids) == n
