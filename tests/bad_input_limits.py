"""Case tables for the classes of issue 10, run by ``test_bad_input.py`` like the others: caps on
decompressed and extracted bytes and on zip members, zip members that cannot be written, JSON
beyond what Python parses (huge integers, deep nesting), lone surrogates, the grade range, ``.npy``
headers, echoed input cut short, CR-only line ends, and degenerate but valid data (a note)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from nudge_core.data import Dataset

from bad_input import (C, CI, CORPUS, CORPUS_DOCS, CORPUS_IDS, DIM, HEADER, N_Q, N_REC, Q, QR,
                       QRELS, QUERIES, QUERY_DOCS, Bad, Good, chain, jsonl, lines_of, patched_npy, put,
                       qrels_with, replace_at, save, zipped)

CJ, QJ = "corpus.jsonl", "queries.jsonl"
GRADES = "-1,000,000 to 1,000,000"
LONG = "x" * 1_000_000  # an id of a million characters: never echoed whole


def gz_corpus(data: bytes, times: int = 1):
    """corpus.jsonl replaced by corpus.jsonl.gz holding ``data`` ``times`` over (concatenated gzip
    members: a large expansion from a tiny file, made instantly)."""
    def mutate(root) -> None:
        (root / CJ).unlink()
        (root / "corpus.jsonl.gz").write_bytes(gzip.compress(data) * times)
    return mutate


def padded_npy(total: int):
    """The valid .npy bytes with the header padded by spaces to ``total`` bytes (format 1.0)."""
    def pad(raw: bytes) -> bytes:
        length = struct.unpack("<H", raw[8:10])[0]
        header = raw[10:10 + length].rstrip(b" \n")
        header += b" " * (total - len(header) - 1) + b"\n"
        return raw[:8] + struct.pack("<H", len(header)) + header + raw[10 + length:]
    return pad


def long_header(raw: bytes) -> bytes:
    """A header whose dict itself is 20,000 characters long (spaces inside it, not padding)."""
    length = struct.unpack("<H", raw[8:10])[0]
    header = raw[10:10 + length].replace(b"'fortran_order'", b" " * 20_000 + b"'fortran_order'")
    return raw[:8] + struct.pack("<H", len(header)) + header + raw[10 + length:]


def claims_huge_header(raw: bytes) -> bytes:
    """Format 2.0 with a header length of 4 GiB - 1."""
    return raw[:6] + b"\x02\x00" + struct.pack("<I", 2**32 - 1) + raw[10:]


def noted(*words: str):
    """A check that one note holds every word (and the arrays still load as given)."""
    def check(ds: Dataset) -> None:
        assert any(all(w in note for w in words) for note in ds.notes), ds.notes
    return check


def no_surrogates(ds: Dataset) -> None:
    for text in list((ds.corpus_text or {}).values()) + list((ds.query_text or {}).values()):
        text.encode("utf-8")  # raises UnicodeEncodeError on a lone surrogate


def caps() -> list:
    blank_mib = b" " * 2**20  # one MiB of blank text
    return [
        Bad("corpus-gz-over-cap", gz_corpus(blank_mib), "corpus.jsonl.gz",
            ("decompresses to more than 100000 bytes", "gzip bomb"), kwargs={"max_bytes": 100_000},
            cli=False),
        Bad("corpus-gz-in-zip-over-cap", chain(gz_corpus(blank_mib, 4), zipped()),
            "ds.zip (member corpus.jsonl.gz)", ("decompresses to more than 1.0 MiB",),
            kwargs={"max_bytes": 2**20}, cli=False),
        Bad("zip-members-over-limit", zipped([(f"extra/{i}.txt", b"") for i in range(20)]), "ds.zip",
            ("has 27 members", "limit of 10"), kwargs={"max_zip_members": 10}, cli=False),
        Bad("zip-members-over-default", zipped([(f"e/{i}", b"") for i in range(10_001)]), "ds.zip",
            ("has 10,008 members", "limit of 10,000")),
        Bad("zip-bytes-over-limit", zipped([("extra.bin", bytes(30_000))]), "ds.zip",
            ("expands to", "limit of 20000 bytes"), kwargs={"max_zip_bytes": 20_000}, cli=False),
        Bad("zip-file-then-folder", zipped([(f"{C}/inner", b"x")]), "ds.zip",
            (f"'{C}/inner'", "clashes with another member")),
        Bad("zip-folder-then-file", zipped([("extra/x/y", b"1"), ("extra/x", b"2")]), "ds.zip",
            ("'extra/x'", "clashes")),
        Bad("zip-name-too-long", zipped([("a" * 300, b"x")]), "ds.zip", ("300 characters", "too long")),
        Bad("zip-path-too-long", zipped([("b/" * 3000 + "f", b"x")]), "ds.zip",
            ("6,001 characters", "too long", "…")),
        Good("corpus-gz-under-cap", gz_corpus("".join(f'{{"_id": "{c}"}}\n' for c in CORPUS_IDS).encode()),
             lambda ds: len(ds.corpus_text) == N_REC or pytest.fail(str(ds.notes)),
             kwargs={"max_bytes": 100_000}),
    ]


def json_limits() -> list:
    huge = "7" * 5000
    deep = "[" * 100_000 + "]" * 100_000
    return [
        Bad("corpus-jsonl-huge-int",
            jsonl(CJ, replace_at(CORPUS_DOCS, 3, f'{{"_id": "d3", "text": {huge}}}')), CJ,
            ("5,000 digits", "4,300"), line=4),
        Bad("corpus-jsonl-huge-int-id", jsonl(CJ, replace_at(CORPUS_DOCS, 0, f'{{"_id": {huge}}}')), CJ,
            ("5,000 digits",), line=1),
        Bad("queries-jsonl-deep", jsonl(QJ, replace_at(QUERY_DOCS, 1, f'{{"_id": "q1", "text": {deep}}}')),
            QJ, ("nested 100,001 levels",), line=2),
        Bad("corpus-jsonl-deep-id", jsonl(CJ, replace_at(CORPUS_DOCS, 6, f'{{"_id": {deep}}}')), CJ,
            ("nested",), line=7),
        Bad("corpus-jsonl-text-object",
            jsonl(CJ, replace_at(CORPUS_DOCS, 2, {"_id": "d2", "text": {"a": 1}})), CJ,
            ('"text" is a JSON dict', "string"), line=3),
        Bad("corpus-jsonl-surrogate-id", jsonl(CJ, replace_at(CORPUS_DOCS, 4, '{"_id": "d\\udc00"}')), CJ,
            ("lone surrogate", "'d\\udc00'"), line=5),
        Good("corpus-jsonl-surrogate-text",
             jsonl(CJ, replace_at(CORPUS_DOCS, 4, '{"_id": "d4", "text": "bad \\ud800 text"}')),
             lambda ds: (no_surrogates(ds), noted(CJ, "1 texts", "surrogate", "line 5")(ds),
                         ds.corpus_text["d4"] == "bad \ufffd text" or pytest.fail(str(ds.notes)))),
        Good("queries-jsonl-surrogate-text",
             jsonl(QJ, replace_at(QUERY_DOCS, 2, '{"_id": "q2", "title": "\\udfff", "text": "x"}')),
             lambda ds: (no_surrogates(ds), noted(QJ, "surrogate", "line 3")(ds))),
        Good("corpus-jsonl-surrogate-pair",
             jsonl(CJ, replace_at(CORPUS_DOCS, 4, '{"_id": "d4", "text": "smile \\ud83d\\ude00"}')),
             lambda ds: (ds.corpus_text["d4"] == "smile \U0001f600" and not ds.notes)
             or pytest.fail(str(ds.notes))),
    ]


def grades() -> list:
    def grade(value: str, line: int = 2):
        return qrels_with({line: f"q0\td0\t{value}" if line == 2 else QRELS[line - 2][:-1] + value})
    return [
        Bad("qrels-score-1e308", grade("1e308"), QR, ("'1e308'", "integer grade", GRADES), line=2),
        Bad("qrels-score-1e3", grade("1e3"), QR, ("integer",), line=2),
        Bad("qrels-score-almost-1", grade("0.99999999999999999"), QR, ("integer", GRADES), line=2),
        Bad("qrels-score-too-big", grade("1000001", 5), QR, ("'1000001'", "outside", GRADES), line=5),
        Bad("qrels-score-too-negative", grade("-1000001", 7), QR, ("outside",), line=7),
        Bad("qrels-score-5000-digits", grade("9" * 5000), QR, ("outside", "5,000 characters"), line=2),
        Good("qrels-score-extremes", qrels_with({2: "q0\td0\t1000000", 3: "q0\td10\t-1000000"}),
             lambda ds: ds.qrels["q0"] == {"d0": 1_000_000, "d10": -1_000_000} or pytest.fail(str(ds.notes))),
        Good("qrels-score-leading-zeros", grade("+0002"),
             lambda ds: ds.qrels["q0"]["d0"] == 2 or pytest.fail(str(ds.notes))),
    ]


def echoes_and_headers() -> list:
    crlf_only = "\r".join([HEADER] + QRELS * 9000)  # about 2.2 MB on one "line"
    return [
        Bad("corpus-ids-duplicate-1mb", lines_of(CI, [LONG, LONG] + CORPUS_IDS[2:]), CI,
            ("duplicate", "1,000,000 characters"), line=2),
        Bad("qrels-unknown-corpus-1mb", qrels_with({4: f"q1\t{LONG}\t1"}), QR,
            ("corpus id list", "1,000,000 characters"), line=4),
        Bad("qrels-cr-only", put(QR, crlf_only), QR, ("header", "CR-only", "convert them to LF"), line=1),
        Bad("corpus-ids-cr-only", lines_of(CI, CORPUS_IDS, "\r"), CI, ("1 ids", "30 rows", "CR-only")),
        Bad("corpus-jsonl-cr-only", put(CJ, "\r".join(f'{{"_id": "{c}"}}' for c in CORPUS_IDS)), CJ,
            ("json", "CR-only"), line=1),
        Bad("corpus-npy-header-dict-too-long", patched_npy(C, CORPUS, long_header), C,
            ("header holds", "10000")),
        Bad("corpus-npy-header-length-huge", patched_npy(C, CORPUS, claims_huge_header), C,
            ("header claims 4294967295 bytes",)),
        Good("corpus-npy-12kb-header", patched_npy(C, CORPUS, padded_npy(12_278)),
             lambda ds: np.testing.assert_array_equal(ds.corpus_emb, CORPUS)),
        Good("queries-npy-60kb-header", patched_npy(Q, QUERIES, padded_npy(60_000)),
             lambda ds: np.testing.assert_array_equal(ds.query_emb, QUERIES)),
        Good("zip-notes-name-the-member", chain(save(C, CORPUS.astype(np.float64)), zipped()),
             lambda ds: (noted("ds.zip: emb/toy/corpus.npy: converted float64")(ds),
                         not any("nudge-zip" in n or "systmp" in n for n in ds.notes) or pytest.fail())),
    ]


def degenerate() -> list:
    same = CORPUS[:1] * np.arange(1, N_REC + 1, dtype=np.float32)[:, None]  # scaled copies of row 0
    one_column = np.zeros((N_REC, DIM), np.float32)
    one_column[:, 3] = np.linspace(-2, 2, N_REC + 1, dtype=np.float32)[np.arange(N_REC + 1) != N_REC // 2]
    return [
        Good("degenerate-records-one-direction", save(C, same), noted("all 30 records", "same direction")),
        Good("degenerate-queries-identical", save(Q, np.tile(QUERIES[:1], (N_Q, 1))),
             noted("all 12 queries", "same direction")),
        Good("degenerate-dim-1", chain(save(C, CORPUS[:, :1]), save(Q, QUERIES[:, :1])),
             noted("records have dimension 1"), dim=1),
        Good("degenerate-one-column", save(C, one_column), noted("records", "column 3 only", "of 8")),
    ]


LIMIT_CASES = caps() + json_limits() + grades() + echoes_and_headers() + degenerate()
