"""Case tables for ``test_bad_input.py``: each breaks one thing in the valid dataset of
:mod:`bad_input` (or is a valid variant that must be accepted)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from nudge_core.data import Dataset

from bad_input import (C, CI, CORPUS, CORPUS_DOCS, CORPUS_IDS, DIM, EMB, HEADER, IN_ZIP, LESS,
                       N_LAB, N_Q, N_REC, Q, QI, QR, QRELS, QUERIES, QUERY_DOCS, QUERY_IDS,
                       absolute_member, Bad, chain, corrupt_member_data, evil_object_array,
                       evil_pickle_in_zip, evil_raw_pickle, Good, jsonl, lines_of, lying_bomb,
                       no_marker, npz_bytes, outside_file, patched_npy, put, qline, qrels_with,
                       remove, replace_at, save, set_zip_flags, symlink_member, with_cell, with_row,
                       zip_bomb, zipped)


def shapes() -> list:
    cases = [
        Bad("corpus-1d", save(C, CORPUS.ravel()), C, ("2-D",)),
        Bad("queries-1d", save(Q, QUERIES.ravel()), Q, ("2-D",)),
        Bad("corpus-3d", save(C, CORPUS[:, :, None]), C, ("2-D",)),
        Bad("queries-3d", save(Q, QUERIES.reshape(N_Q, 2, 4)), Q, ("2-D",)),
        Bad("corpus-0d", save(C, np.float32(1.0)), C, ("2-D",)),
        Bad("corpus-zero-rows", save(C, np.zeros((0, DIM), np.float32)), C, ("at least one row",)),
        Bad("queries-zero-rows", save(Q, np.zeros((0, DIM), np.float32)), Q, ("at least one row",)),
        Bad("corpus-zero-cols", save(C, np.zeros((N_REC, 0), np.float32)), C, ("one column",)),
        Bad("queries-zero-cols", save(Q, np.zeros((N_Q, 0), np.float32)), Q, ("one column",)),
        Bad("query-dim-smaller", save(Q, QUERIES[:, :6]), Q, ("dimension 6", "dimension 8")),
        Bad("corpus-dim-larger", save(C, np.hstack([CORPUS, CORPUS[:, :2]])), Q,
            ("dimension 8", "dimension 10")),
        Bad("corpus-ids-more", lines_of(CI, CORPUS_IDS + ["d30"]), CI, ("31 ids", "30 rows")),
        Bad("corpus-ids-fewer", lines_of(CI, CORPUS_IDS[:-1]), CI, ("29 ids", "30 rows")),
        Bad("corpus-ids-one", lines_of(CI, ["d0"]), CI, ("1 ids", "30 rows")),
        Bad("query-ids-more", lines_of(QI, QUERY_IDS + ["q12", "q13"]), QI, ("14 ids", "12 rows")),
        Bad("query-ids-fewer", lines_of(QI, QUERY_IDS[:5]), QI, ("5 ids", "12 rows")),
        Bad("corpus-rows-fewer", save(C, CORPUS[:20]), CI, ("30 ids", "20 rows")),
        Bad("queries-rows-more", save(Q, np.vstack([QUERIES, QUERIES[:1]])), QI, ("12 ids", "13 rows")),
        Bad("corpus-ids-empty", put(CI, ""), CI, ("empty",)),
        Bad("query-ids-empty", put(QI, ""), QI, ("empty",)),
        Bad("corpus-ids-only-newlines", put(CI, "\n\n"), CI, ("blank id",), line=1),
        Bad("corpus-ids-blank-line", lines_of(CI, replace_at(CORPUS_IDS, 4, "")), CI, ("blank id",), line=5),
        Bad("corpus-ids-spaces-line", lines_of(CI, replace_at(CORPUS_IDS, 6, "   ")), CI, ("blank",), line=7),
        Bad("query-ids-blank-line", lines_of(QI, replace_at(QUERY_IDS, 2, "")), QI, ("blank id",), line=3),
        Bad("corpus-ids-trailing-blank-line", lines_of(CI, CORPUS_IDS + [""]), CI, ("blank",), line=31),
        Bad("corpus-ids-duplicate", lines_of(CI, replace_at(CORPUS_IDS, 9, "d1")), CI,
            ("duplicate", "'d1'", "line 2"), line=10),
        Bad("corpus-ids-duplicate-last", lines_of(CI, replace_at(CORPUS_IDS, 29, "d0")), CI,
            ("duplicate", "'d0'"), line=30),
        Bad("query-ids-duplicate", lines_of(QI, replace_at(QUERY_IDS, 5, "q4")), QI,
            ("duplicate", "'q4'"), line=6),
        Bad("query-ids-duplicate-after-strip", lines_of(QI, replace_at(QUERY_IDS, 3, " q2 ")), QI,
            ("duplicate", "'q2'"), line=4),
        Bad("corpus-ids-latin1", put(CI, "\n".join(replace_at(CORPUS_IDS, 3, "d\xe9")).encode("latin-1")),
            CI, ("utf-8",), line=4),
        Bad("query-ids-nul", put(QI, "q0\nq1\x00\n" + "".join(q + "\n" for q in QUERY_IDS[2:])), QI,
            ("nul",), line=2),
        Good("ids-crlf", chain(lines_of(CI, CORPUS_IDS, "\r\n"), lines_of(QI, QUERY_IDS, "\r\n")),
             lambda ds: (ds.corpus_ids == CORPUS_IDS and ds.query_ids == QUERY_IDS) or pytest.fail()),
        Good("ids-no-trailing-newline", chain(put(CI, "\n".join(CORPUS_IDS)), put(QI, "\n".join(QUERY_IDS))),
             lambda ds: (ds.corpus_ids == CORPUS_IDS and ds.query_ids == QUERY_IDS) or pytest.fail()),
        Good("ids-trailing-newline", lambda root: None,
             lambda ds: (ds.n_records == N_REC and len(ds.labelled_ids) == N_LAB and not ds.notes)
             or pytest.fail()),
        Good("ids-bom", put(CI, "\ufeff" + "\n".join(CORPUS_IDS)),
             lambda ds: ds.corpus_ids[0] == "d0" or pytest.fail()),
    ]
    return cases


def values() -> list:
    def noted(dtype: str):
        def check(ds: Dataset) -> None:
            assert ds.corpus_emb.dtype == np.float32 and ds.query_emb.dtype == np.float32
            assert any(dtype in n and "float32" in n for n in ds.notes), ds.notes
        return check

    def same(ds: Dataset) -> None:
        np.testing.assert_allclose(np.asarray(ds.corpus_emb), CORPUS, rtol=1e-3, atol=1e-3)

    structured = np.zeros(N_REC, dtype=[("a", "f4"), ("b", "f4")])
    cases = []
    for rel, base, rows in ((C, CORPUS, (0, 7, 29)), (Q, QUERIES, (0, 5, 11))):
        for r in rows:
            cases.append(Bad(f"{Path(rel).stem}-nan-row{r}", save(rel, with_cell(base, r, r % DIM, np.nan)),
                             rel, ("nan", "finite"), row=r))
        cases.append(Bad(f"{Path(rel).stem}-inf-row2", save(rel, with_cell(base, 2, 1, np.inf)), rel,
                         ("infinite",), row=2))
        cases.append(Bad(f"{Path(rel).stem}-neginf-row{rows[1]}",
                         save(rel, with_cell(base, rows[1], 0, -np.inf)), rel, ("infinite",), row=rows[1]))
        cases.append(Bad(f"{Path(rel).stem}-zero-row{rows[1]}", save(rel, with_row(base, rows[1], 0.0)),
                         rel, ("all-zero",), row=rows[1]))
        for dtype in ("int32", "int64", "uint8", "complex64", "complex128", "bool"):
            cases.append(Bad(f"{Path(rel).stem}-{dtype}", save(rel, (base * 3).astype(dtype)), rel,
                             (dtype, "float")))
    cases += [
        Bad("corpus-zero-row0", save(C, with_row(CORPUS, 0, 0.0)), C, ("all-zero",), row=0),
        Bad("corpus-zero-row-last", save(C, with_row(CORPUS, 29, 0.0)), C, ("all-zero",), row=29),
        Bad("corpus-nan-and-zero-first-wins", save(C, with_row(with_cell(CORPUS, 4, 0, np.nan), 9, 0.0)),
            C, ("nan",), row=4),
        Bad("corpus-structured", save(C, structured), C, ("dtype", "float32")),
        Bad("corpus-float16-nan-row6", save(C, with_cell(CORPUS, 6, 3, np.nan).astype(np.float16)), C,
            ("nan",), row=6),
        Bad("corpus-float64-overflows-float32", save(C, with_cell(CORPUS.astype(np.float64), 11, 2, 1e40)),
            C, ("infinite",), row=11),
        Bad("corpus-object-evil-pickle", evil_object_array(C), C, ("python objects", "nothing is unpickled"),
            post=no_marker),
        Bad("queries-object-evil-pickle", evil_object_array(Q), Q, ("python objects",), post=no_marker),
        Bad("corpus-object-floats", save(C, CORPUS.astype(object), allow_pickle=True), C,
            ("python objects",)),
        Bad("corpus-structured-object-field",
            save(C, np.zeros(3, dtype=[("a", "f4"), ("b", "O")]), allow_pickle=True), C, ("python objects",)),
        Bad("corpus-raw-evil-pickle", evil_raw_pickle(C), C, ("npy format",), post=no_marker),
        Bad("queries-raw-evil-pickle", evil_raw_pickle(Q), Q, ("npy format",), post=no_marker),
        Bad("corpus-header-shape-bigger",
            patched_npy(C, CORPUS, lambda b: b.replace(b"(30, 8)", b"(40, 8)")), C, LESS),
        Bad("corpus-header-shape-huge",
            patched_npy(C, CORPUS, lambda b: b.replace(b"(30, 8)", b"(99999999999, 8)")), C, LESS),
        Bad("corpus-header-shape-smaller",
            patched_npy(C, CORPUS, lambda b: b.replace(b"(30, 8)", b"(20, 8)")), C, ("bytes more", "header")),
        Bad("queries-header-shape-smaller",
            patched_npy(Q, QUERIES, lambda b: b.replace(b"(12, 8)", b"(12, 4)")), Q, ("bytes more",)),
        Bad("corpus-header-shape-reshaped",
            patched_npy(C, CORPUS, lambda b: b.replace(b"(30, 8)", b"(3, 80)")), CI, ("3 rows",)),
        Bad("corpus-header-shape-negative",
            patched_npy(C, CORPUS, lambda b: b.replace(b"(30, 8)", b"(-30, 8)")), C, ("valid .npy",)),
        Bad("corpus-header-descr-f8", patched_npy(C, CORPUS, lambda b: b.replace(b"<f4", b"<f8")), C,
            ("less data than its header",)),
        Bad("corpus-header-descr-f2", patched_npy(C, CORPUS, lambda b: b.replace(b"<f4", b"<f2")), C,
            ("bytes more",)),
        Bad("corpus-header-descr-invalid", patched_npy(C, CORPUS, lambda b: b.replace(b"<f4", b"<x9")), C,
            ("valid .npy", "descr")),
        Bad("corpus-header-descr-object", patched_npy(C, CORPUS, lambda b: b.replace(b"'<f4'", b"'|O' ")),
            C, ("python objects",), post=no_marker),
        Bad("corpus-header-garbage",
            patched_npy(C, CORPUS, lambda b: b[:10] + b"{'nonsense': 1" + b[24:]), C, ("valid .npy",)),
        Bad("corpus-header-bad-version", patched_npy(C, CORPUS, lambda b: b[:6] + b"\x09\x00" + b[8:]), C,
            ("valid .npy",)),
        Bad("corpus-truncated-data", patched_npy(C, CORPUS, lambda b: b[:-10]), C, LESS),
        Bad("queries-truncated-data", patched_npy(Q, QUERIES, lambda b: b[:len(b) // 2]), Q, LESS),
        Bad("corpus-truncated-header", patched_npy(C, CORPUS, lambda b: b[:40]), C, ("valid .npy",)),
        Bad("corpus-magic-only", put(C, b"\x93NUMPY"), C, ("valid .npy",)),
        Bad("corpus-random-bytes", put(C, np.random.default_rng(1).bytes(1000)), C, ("npy format",)),
        Bad("queries-random-bytes", put(Q, np.random.default_rng(2).bytes(77)), Q, ("npy format",)),
        Bad("corpus-empty-file", put(C, b""), C, ("empty",)),
        Bad("queries-empty-file", put(Q, b""), Q, ("empty",)),
        Bad("corpus-npz-renamed", put(C, npz_bytes(corpus=CORPUS)), C, ("npz",)),
        Bad("corpus-text-renamed", put(C, "0.1 0.2 0.3\n0.4 0.5 0.6\n"), C, ("npy format",)),
        Bad("queries-csv-renamed", put(Q, "\n".join(",".join("0.5" for _ in range(DIM)) for _ in range(N_Q))),
            Q, ("npy format",)),
        Bad("corpus-json-renamed", put(C, json.dumps(CORPUS.tolist())), C, ("npy format",)),
        Good("corpus-float16", save(C, CORPUS.astype(np.float16)), noted("float16")),
        Good("corpus-float64", save(C, CORPUS.astype(np.float64)),
             lambda ds: (noted("float64")(ds), same(ds))),
        Good("queries-float16", save(Q, QUERIES.astype(np.float16)), noted("float16")),
        Good("queries-float64", save(Q, QUERIES.astype(np.float64)), noted("float64")),
        Good("corpus-big-endian", save(C, CORPUS.astype(">f4")), lambda ds: (noted(">f4")(ds), same(ds))),
        Good("corpus-fortran-order", save(C, np.asfortranarray(CORPUS)), same),
        Good("queries-fortran-order", save(Q, np.asfortranarray(QUERIES)),
             lambda ds: np.testing.assert_array_equal(np.asarray(ds.query_emb), QUERIES)),
        Good("corpus-fortran-float64", save(C, np.asfortranarray(CORPUS.astype(np.float64))),
             lambda ds: (noted("float64")(ds), same(ds))),
    ]
    return cases


def qrels_cases() -> list:
    train = "qrels/train.tsv"
    cases = [
        Bad("qrels-missing-header", lines_of(QR, QRELS), QR, ("header",), line=1),
        Bad("qrels-wrong-header", qrels_with({}, header="qid\tdid\tscore"), QR, ("query-id",), line=1),
        Bad("qrels-header-spaces", qrels_with({}, header="query-id corpus-id score"), QR, ("header",),
            line=1),
        Bad("qrels-header-two-cols", qrels_with({}, header="query-id\tcorpus-id"), QR, ("header",), line=1),
        Bad("qrels-header-four-cols", qrels_with({}, header=HEADER + "\textra"), QR, ("header",), line=1),
        Bad("qrels-two-columns", qrels_with({4: "q1\td1"}), QR, ("3 tab-separated", "found 2"), line=4),
        Bad("qrels-one-column", qrels_with({9: "q3"}), QR, ("found 1",), line=9),
        Bad("qrels-four-columns", qrels_with({6: "q2\td2\t1\t0"}), QR, ("found 4",), line=6),
        Bad("qrels-trailing-tab", qrels_with({21: QRELS[19] + "\t"}), QR, ("found 4",), line=21),
        Bad("qrels-space-separated", qrels_with({3: "q0 d10 2"}), QR, ("found 1",), line=3),
        Bad("qrels-score-word", qrels_with({3: "q0\td10\tyes"}), QR, ("'yes'", "not a number"), line=3),
        Bad("qrels-score-empty", qrels_with({5: "q1\td11\t"}), QR, ("not a number",), line=5),
        Bad("qrels-score-1.5", qrels_with({2: "q0\td0\t1.5"}), QR, ("'1.5'", "integer"), line=2),
        Bad("qrels-score-0.5", qrels_with({12: "q5\td5\t0.5"}), QR, ("integer",), line=12),
        Bad("qrels-score-nan", qrels_with({7: "q2\td12\tnan"}), QR, ("'nan'", "integer"), line=7),
        Bad("qrels-score-inf", qrels_with({8: "q3\td3\tinf"}), QR, ("integer",), line=8),
        Bad("qrels-score-underscore", qrels_with({8: "q3\td3\t1_0"}), QR, ("'1_0'", "not a number"), line=8),
        Bad("qrels-score-hex", qrels_with({8: "q3\td3\t0x1"}), QR, ("'0x1'", "not a number"), line=8),
        Bad("qrels-score-arabic-digit", qrels_with({8: "q3\td3\t\u0661"}), QR, ("not a number",), line=8),
        Bad("qrels-score-neg-inf", qrels_with({8: "q3\td3\t-inf"}), QR, ("integer",), line=8),
        Bad("qrels-empty-query-id", qrels_with({10: "\td4\t1"}), QR, ("empty query-id",), line=10),
        Bad("qrels-empty-corpus-id", qrels_with({11: "q4\t\t1"}), QR, ("corpus-id",), line=11),
        Bad("qrels-blank-ids", qrels_with({11: "  \t  \t1"}), QR, ("empty",), line=11),
        Bad("qrels-unknown-query", qrels_with({}, ["qX\td3\t1"]), QR, ("'qX'", "query id list"), line=22),
        Bad("qrels-unknown-query-mid", qrels_with({qline(4): "zz\td4\t1"}), QR, ("'zz'",), line=qline(4)),
        Bad("qrels-unknown-corpus", qrels_with({qline(2, 1): "q2\td99\t1"}), QR,
            ("'d99'", "corpus id list"), line=qline(2, 1)),
        Bad("qrels-unknown-corpus-last", qrels_with({}, ["q9\tdocX\t1"]), QR, ("'docX'",), line=22),
        Bad("qrels-duplicate", qrels_with({}, ["q0\td0\t1"]), QR, ("duplicate", "'q0'", "'d0'"), line=22),
        Bad("qrels-duplicate-other-grade", qrels_with({5: "q1\td1\t2"}), QR, ("duplicate",), line=5),
        Bad("qrels-conflict-across-files",
            chain(lines_of(train, [HEADER, "q0\td0\t2"]), qrels_with({})), QR,
            ("'q0'", "'d0'", "train.tsv"), line=qline(0)),
        Bad("qrels-conflict-dev-test",
            chain(lines_of("qrels/dev.tsv", [HEADER, "q3\td13\t1"]), qrels_with({})), QR,
            ("'d13'", "dev.tsv"), line=qline(3, 1)),
        Bad("qrels-header-only", lines_of(QR, [HEADER]), QR, ("no judgements",)),
        Bad("qrels-header-and-blank-lines", lines_of(QR, [HEADER, "", "  "]), QR, ("no judgements",)),
        Bad("qrels-empty-file", put(QR, b""), QR, ("empty",)),
        Bad("qrels-no-folder", remove("qrels"), "ds", ("qrels/*.tsv",)),
        Bad("qrels-empty-folder", remove(QR), "ds", ("qrels/*.tsv",)),
        Bad("qrels-only-txt", chain(remove(QR), lines_of("qrels/test.txt", [HEADER] + QRELS)), "ds",
            ("qrels/*.tsv",)),
        Bad("qrels-all-zero", lines_of(QR, [HEADER] + [q[:-1] + "0" for q in QRELS]), QR,
            ("no query has a positive judgement",)),
        Bad("qrels-all-negative", lines_of(QR, [HEADER] + [q[:-1] + "-1" for q in QRELS]), QR,
            ("positive judgement",)),
        Bad("qrels-latin1", put(QR, ("\n".join([HEADER] + replace_at(QRELS, 3, "q1\td\xe9\t1")) + "\n")
                                .encode("latin-1")), QR, ("utf-8",), line=5),
        Bad("qrels-latin1-header", put(QR, "query-id\tcorpus-id\tscor\xe9\n".encode("latin-1")), QR,
            ("utf-8",), line=1),
        Bad("qrels-nul", put(QR, "\n".join([HEADER] + replace_at(QRELS, 2, "q1\td1\x00\t1")) + "\n"), QR,
            ("nul",), line=4),
        Bad("qrels-utf16", put(QR, ("\n".join([HEADER] + QRELS) + "\n").encode("utf-16")), QR, ("utf-8",)),
        Bad("qrels-train-broken", chain(lines_of(train, ["q0\td0\t1"]), qrels_with({})), train, ("header",),
            line=1),
        Good("qrels-bom", put(QR, "\ufeff" + "\n".join([HEADER] + QRELS) + "\n"),
             lambda ds: len(ds.labelled_ids) == N_LAB or pytest.fail()),
        Good("qrels-crlf", lines_of(QR, [HEADER] + QRELS, "\r\n"),
             lambda ds: ds.qrels["q0"] == {"d0": 1, "d10": 2} or pytest.fail()),
        Good("qrels-header-case-and-spaces", qrels_with({}, header="Query-ID\t Corpus-ID \tScore"),
             lambda ds: len(ds.labelled_ids) == N_LAB or pytest.fail()),
        Good("qrels-float-grades", lines_of(QR, [HEADER] + [q + ".0" for q in QRELS]),
             lambda ds: ds.qrels["q1"] == {"d1": 1, "d11": 2} or pytest.fail()),
        Good("qrels-same-grade-in-two-files", chain(lines_of(train, [HEADER, "q0\td0\t1"]), qrels_with({})),
             lambda ds: set(ds.qrels_files) == {"train", "test"} or pytest.fail()),
    ]

    def zero_only(n: int):
        body = [q[:-1] + "0" if int(q.split("\t")[0][1:]) < n else q for q in QRELS]
        return lines_of(QR, [HEADER] + body)

    def excluded(n: int):
        def check(ds: Dataset) -> None:
            assert len(ds.labelled_ids) == N_LAB - n
            assert any(f"excluded {n} queries" in note for note in ds.notes), ds.notes
        return check
    cases += [Good(f"qrels-score0-only-{n}", zero_only(n), excluded(n)) for n in (1, 3, 9)]
    return cases


def text_cases() -> list:
    cj, qj = "corpus.jsonl", "queries.jsonl"
    docs, qdocs = CORPUS_DOCS, QUERY_DOCS

    def gz(data: bytes, cut: int | None = None, flip: bool = False):
        def mutate(root: Path) -> None:
            (root / cj).unlink()
            raw = gzip.compress(data)
            if flip:
                raw = raw[:20] + bytes(b ^ 0xFF for b in raw[20:40]) + raw[40:]
            (root / "corpus.jsonl.gz").write_bytes(raw[:cut])
        return mutate

    body = "".join(json.dumps(d) + "\n" for d in docs).encode()
    return [
        Bad("corpus-jsonl-invalid", jsonl(cj, replace_at(docs, 2, '{"_id": "d2", "text": ')), cj,
            ("json",), line=3),
        Bad("corpus-jsonl-single-quotes", jsonl(cj, replace_at(docs, 0, "{'_id': 'd0'}")), cj, ("json",),
            line=1),
        Bad("corpus-jsonl-list", jsonl(cj, replace_at(docs, 1, ["d1", "text"])), cj, ("object",), line=2),
        Bad("corpus-jsonl-string", jsonl(cj, replace_at(docs, 5, "d5")), cj, ("json",), line=6),
        Bad("corpus-jsonl-number", jsonl(cj, replace_at(docs, 7, 7)), cj, ("object",), line=8),
        Bad("corpus-jsonl-no-id", jsonl(cj, replace_at(docs, 3, {"id": "d3", "text": "x"})), cj,
            ('"_id"',), line=4),
        Bad("corpus-jsonl-null-id", jsonl(cj, replace_at(docs, 4, {"_id": None})), cj, ('"_id"',), line=5),
        Bad("corpus-jsonl-empty-id", jsonl(cj, replace_at(docs, 4, {"_id": " "})), cj, ('"_id"',), line=5),
        Bad("corpus-jsonl-dup-id", jsonl(cj, replace_at(docs, 5, {"_id": "d0", "text": "x"})), cj,
            ("duplicate", "'d0'"), line=6),
        Bad("corpus-jsonl-latin1", put(cj, body.replace(b"text d3", "text d\xe9".encode("latin-1"))), cj,
            ("utf-8",), line=4),
        Bad("corpus-jsonl-nul", put(cj, body.replace(b"text d8", b"text \x00")), cj, ("nul",), line=9),
        Bad("corpus-gz-truncated", gz(body, cut=60), "corpus.jsonl.gz", ("cannot read",)),
        Bad("corpus-gz-corrupt", gz(body, flip=True), "corpus.jsonl.gz", ("cannot read",)),
        Bad("corpus-gz-not-gzip", chain(remove(cj), put("corpus.jsonl.gz", body)), "corpus.jsonl.gz",
            ("cannot read",)),
        Bad("corpus-gz-bad-json", gz(b"{nope}\n"), "corpus.jsonl.gz", ("json",), line=1),
        Bad("queries-jsonl-invalid", jsonl(qj, replace_at(qdocs, 0, "{")), qj, ("json",), line=1),
        Bad("queries-jsonl-non-object", jsonl(qj, replace_at(qdocs, 11, "null")), qj, ("object",), line=12),
        Bad("queries-jsonl-no-id", jsonl(qj, replace_at(qdocs, 4, {"text": "q"})), qj, ('"_id"',), line=5),
        Bad("queries-jsonl-dict-id", jsonl(qj, replace_at(qdocs, 4, {"_id": {"a": 1}})), qj, ('"_id"',),
            line=5),
        Bad("queries-jsonl-dup-id", jsonl(qj, qdocs + [{"_id": "q3"}]), qj, ("duplicate", "'q3'"), line=13),
        Bad("queries-jsonl-latin1", put(qj, '{"_id": "q0", "text": "caf\xe9"}\n'.encode("latin-1")), qj,
            ("utf-8",), line=1),
        Good("corpus-jsonl-blank-lines", jsonl(cj, docs[:3] + [""] + docs[3:]),
             lambda ds: len(ds.corpus_text) == N_REC or pytest.fail()),
        Good("corpus-jsonl-gz", gz(body), lambda ds: ds.corpus_text["d3"] == "text d3" or pytest.fail()),
        Good("corpus-jsonl-int-ids", jsonl(cj, [{"_id": i, "text": "t"} for i in range(3)]),
             lambda ds: set(ds.corpus_text) == {"0", "1", "2"} or pytest.fail()),
        Good("texts-skipped", jsonl(cj, ["{broken"]), lambda ds: ds.corpus_text is None or pytest.fail(),
             kwargs={"load_texts": False}),
    ]


def layout_cases() -> list:
    def two_models(root: Path) -> None:
        import shutil
        shutil.copytree(root / EMB, root / "emb" / "other-model")

    def nest(levels: int, siblings: bool = False):
        def mutate(root: Path) -> Path:
            outer = root.parent / "outer"
            inner = outer
            for k in range(levels):
                inner = inner / f"level{k}"
            inner.parent.mkdir(parents=True)
            root.rename(inner)
            if siblings:
                (inner.parent / "sibling").mkdir()
            return outer
        return mutate

    def symlink_loop(root: Path) -> Path:
        (root.parent / "loop").mkdir()
        (root.parent / "loop" / "again").symlink_to(root.parent / "loop")
        return root.parent / "loop"

    return [
        Bad("no-emb-folder", remove("emb"), "ds", ("emb/<model>",)),
        Bad("emb-folder-empty", remove(EMB), "ds", ("emb/<model>",)),
        Bad("emb-model-is-file", chain(remove(EMB), put(EMB, "x")), "ds", ("emb/<model>",)),
        Bad("several-models", two_models, "ds", ("several", "'other-model'", "'toy'")),
        Bad("unknown-model", lambda root: None, "ds", ("'nope'", "available", "'toy'"),
            kwargs={"model": "nope"}, cli=False),
        Bad("model-path-traversal", lambda root: None, "ds", ("available",), kwargs={"model": "../emb"},
            cli=False),
        Bad("missing-corpus-npy", remove(C), C, ("missing",)),
        Bad("missing-queries-npy", remove(Q), Q, ("missing",)),
        Bad("missing-corpus-ids", remove(CI), CI, ("missing",)),
        Bad("missing-query-ids", remove(QI), QI, ("missing",)),
        Bad("corpus-npy-is-folder", chain(remove(C), lambda root: (root / C).mkdir()), C,
            ("folder", "expected a file")),
        Bad("path-does-not-exist", lambda root: root.parent / "no-such-dataset", "no-such-dataset",
            ("no such",)),
        Bad("plain-text-file", outside_file("notes.txt", "hello"), "notes.txt", ("folder or a .zip",)),
        Bad("npy-as-dataset", lambda root: root / C, C, ("folder or a .zip",)),
        Bad("text-file-named-zip", outside_file("fake.zip", "hello"), "fake.zip", ("zip",)),
        Bad("nested-with-sibling", nest(2, siblings=True), "outer", ("emb/<model>",)),
        Bad("symlink-loop", symlink_loop, "loop", ("emb/<model>",)),
        Good("nested-one-level", nest(1)),
        Good("nested-two-levels", nest(2)),
        Good("model-chosen", two_models, lambda ds: ds.model == "other-model" or pytest.fail(),
             kwargs={"model": "other-model"}),
    ]


def zip_cases() -> list:
    abs_mutate, abs_post = absolute_member()

    def outside(*names: str):
        def post(tmp: Path) -> None:
            for name in names:
                assert not (tmp / name).exists() and not (tmp / "systmp" / name).exists()
        return post

    return [
        Bad("zip-traversal", zipped([("../evil.txt", b"x")]), "ds.zip", ("'../evil.txt'", "outside"),
            post=outside("evil.txt")),
        Bad("zip-traversal-deep", zipped([("../../evil.txt", b"x")]), "ds.zip", ("outside",),
            post=outside("evil.txt")),
        Bad("zip-traversal-inner", zipped([("data/../../evil.txt", b"x")]), "ds.zip", ("outside",),
            post=outside("evil.txt")),
        Bad("zip-traversal-backslash", zipped([("..\\evil.txt", b"x")]), "ds.zip", ("outside",),
            post=outside("evil.txt", "..\\evil.txt")),
        Bad("zip-absolute", abs_mutate, "ds.zip", ("outside",), post=abs_post),
        Bad("zip-drive-letter", zipped([("C:/evil.txt", b"x")]), "ds.zip", ("outside",)),
        Bad("zip-traversal-dir-entry", zipped([("../evil/", b"")]), "ds.zip", ("outside",),
            post=outside("evil")),
        Bad("zip-symlink", zipped([symlink_member("link", "/etc/passwd")]), "ds.zip", ("symbolic link",),
            post=outside("link")),
        Bad("zip-symlink-relative", zipped([symlink_member("emb/toy/evil", "../../..")]), "ds.zip",
            ("symbolic link",)),
        Bad("zip-bomb", zip_bomb, "bomb.zip", ("zip bomb",)),
        Bad("zip-bomb-lying-sizes", lying_bomb, "ds.zip", ("'zeros.bin'",)),
        Bad("zip-random-bytes", outside_file("bad.zip", np.random.default_rng(3).bytes(4000)), "bad.zip",
            ("not a readable zip",)),
        Bad("zip-truncated", zipped(patch=lambda b: b[:len(b) // 2]), "ds.zip", ("not a readable zip",)),
        Bad("zip-zero-bytes", zipped(keep_dataset=False, patch=lambda b: b""), "ds.zip",
            ("not a readable zip",)),
        Bad("zip-empty", zipped(keep_dataset=False), "ds.zip", ("empty",)),
        Bad("zip-member-corrupt", zipped(patch=corrupt_member_data), "ds.zip", ("corrupt",)),
        Bad("zip-encrypted", zipped(patch=lambda b: set_zip_flags(b, flag=1)), "ds.zip", ("encrypted",)),
        Bad("zip-unknown-method", zipped(patch=lambda b: set_zip_flags(b, method=99)), "ds.zip",
            ("compression method 99",)),
        Bad("zip-without-dataset", zipped([("readme.txt", b"hi")], keep_dataset=False), "ds.zip:",
            ("emb/<model>",)),
        Bad("zip-holding-nan", chain(save(C, with_cell(CORPUS, 3, 3, np.nan)), zipped()), IN_ZIP,
            ("nan",), row=3),
        Bad("zip-holding-evil-pickle", evil_pickle_in_zip, IN_ZIP, ("python objects",), post=no_marker),
        Bad("zip-holding-two-zero-qrels", chain(lines_of("qrels/train.tsv", [HEADER, "q0\td0\t0"]),
                                                 lines_of(QR, [HEADER, "q1\td1\t0"]), zipped()),
            "ds.zip (member qrels/train.tsv, qrels/test.tsv)", ("positive",)),
        Bad("zip-traversal-extract-dir", zipped([("../evil.txt", b"x")]), "ds.zip", ("outside",),
            kwargs={"extract_dir": True}, post=outside("evil.txt", "extract/evil.txt"), cli=False),
        Good("zip-flat", zipped(), lambda ds: (ds.name == "ds" and ds.n_records == N_REC) or pytest.fail()),
        Good("zip-top-folder", zipped(prefix="mydata/"), lambda ds: ds.n_records == N_REC or pytest.fail()),
        Good("zip-top-folder-macosx", zipped([("__MACOSX/mydata/._x", b"junk")], prefix="mydata/"),
             lambda ds: np.testing.assert_array_equal(ds.corpus_emb, CORPUS)),
        Good("zip-small-highly-compressible", zipped([("notes.txt", bytes(100_000))]),
             lambda ds: ds.n_records == N_REC or pytest.fail()),
    ]


BAD_AND_GOOD = shapes() + values() + qrels_cases() + text_cases() + layout_cases() + zip_cases()
