"""Malformed datasets, split files and command lines: each one must be refused with a clear error.

Every case starts from a tiny valid dataset written into ``tmp_path`` and breaks one thing. From the
Python API the error is a :class:`DataError` naming the file (and the line or row where there is
one) and what was expected; from the CLI ``main`` returns 2 and prints exactly one ``error:`` line.
Nothing may be executed (pickles stay unpickled, no method is fitted) and nothing may be written
outside the paths the caller named. Some variants are valid and must be accepted (CRLF, BOM,
float16, Fortran order, zips with a top folder...).
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import stat
import struct
import tempfile
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from nudge_core import cli
from nudge_core.data import Dataset, dataset_from_arrays, load_dataset, load_query_set
from nudge_core.errors import DataError
from nudge_core.splits import paper_split, split_from_json, split_from_qrels_files

N_REC, DIM, N_Q, N_LAB = 30, 8, 12, 10  # q10 and q11 have no judgement at all
MODEL = "toy"
RNG = np.random.default_rng(7)
CORPUS = RNG.standard_normal((N_REC, DIM)).astype(np.float32)
QUERIES = RNG.standard_normal((N_Q, DIM)).astype(np.float32)
CORPUS_IDS = [f"d{i}" for i in range(N_REC)]
QUERY_IDS = [f"q{j}" for j in range(N_Q)]
HEADER = "query-id\tcorpus-id\tscore"
#: qrels/test.tsv body; judgement (j, k) of query j is on line 2 + 2j + k of the file.
QRELS = [f"q{j}\td{j + 10 * k}\t{k + 1}" for j in range(N_LAB) for k in range(2)]
EMB = f"emb/{MODEL}"


def qline(j: int, k: int = 0) -> int:
    return 2 + 2 * j + k


class Evil:
    """Unpickling this creates ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_valid(root: Path, texts: bool = True) -> Path:
    emb = root / EMB
    emb.mkdir(parents=True)
    (root / "qrels").mkdir()
    np.save(emb / "corpus.npy", CORPUS)
    np.save(emb / "queries.npy", QUERIES)
    (emb / "corpus_ids.txt").write_text("".join(c + "\n" for c in CORPUS_IDS))
    (emb / "query_ids.txt").write_text("".join(q + "\n" for q in QUERY_IDS))
    (root / "qrels" / "test.tsv").write_text("\n".join([HEADER] + QRELS) + "\n")
    if texts:
        (root / "corpus.jsonl").write_text("".join(
            json.dumps({"_id": c, "title": f"T{c}", "text": f"text {c}"}) + "\n" for c in CORPUS_IDS))
        (root / "queries.jsonl").write_text("".join(
            json.dumps({"_id": q, "text": f"question {q}"}) + "\n" for q in QUERY_IDS))
    return root


# ----------------------------------------------------------------------------- mutators
# Each returns a function ``mutate(root) -> Path | None`` (the path to load, default ``root``).

def save(rel: str, arr: np.ndarray, **kw):
    def mutate(root: Path) -> None:
        np.save(root / rel, arr, **kw)
    return mutate


def put(rel: str, data: bytes | str):
    def mutate(root: Path) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return mutate


def lines_of(rel: str, lines: list[str], end: str = "\n"):
    return put(rel, end.join(lines) + end)


def remove(rel: str):
    def mutate(root: Path) -> None:
        path = root / rel
        if path.is_dir():
            import shutil
            shutil.rmtree(path)
        else:
            path.unlink()
    return mutate


def chain(*mutators):
    def mutate(root: Path):
        out = None
        for m in mutators:
            out = m(root) or out
        return out
    return mutate


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def patched_npy(rel: str, arr: np.ndarray, fn: Callable[[bytes], bytes]):
    return put(rel, fn(npy_bytes(arr)))


def with_row(arr: np.ndarray, row: int, value) -> np.ndarray:
    out = arr.copy()
    out[row] = value
    return out


def with_cell(arr: np.ndarray, row: int, col: int, value) -> np.ndarray:
    out = arr.copy()
    out[row, col] = value
    return out


def qrels_with(changes: dict[int, str | None], extra: list[str] = (), rel: str = "qrels/test.tsv",
               header: str = HEADER):
    """The base qrels with line ``n`` (1-based, the header is line 1) replaced (None = dropped)."""
    body = list(QRELS)
    for number, text in changes.items():
        body[number - 2] = text
    return lines_of(rel, [header] + [b for b in body if b is not None] + list(extra))


def outside_file(name: str, data: bytes | str):
    """Write a file next to the dataset folder and load that instead."""
    def mutate(root: Path) -> Path:
        put(f"../{name}", data)(root)
        return root.parent / name
    return mutate


def jsonl(rel: str, objs: list[object]):
    return put(rel, "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs))


CORPUS_DOCS = [{"_id": c, "text": f"text {c}"} for c in CORPUS_IDS]
QUERY_DOCS = [{"_id": q, "text": f"question {q}"} for q in QUERY_IDS]


def replace_at(items: list, index: int, value) -> list:
    out = list(items)
    out[index] = value
    return out


# zip archives ---------------------------------------------------------------------------------

def dataset_members(root: Path, prefix: str = "") -> list[tuple[str, bytes]]:
    return [(prefix + p.relative_to(root).as_posix(), p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()]


def zipped(extra: list[tuple[str | zipfile.ZipInfo, bytes]] = (), prefix: str = "",
           keep_dataset: bool = True, name: str = "ds.zip", patch: Callable[[bytes], bytes] | None = None):
    """Zip the dataset (under ``prefix``) plus ``extra`` members next to it; load the zip."""
    def mutate(root: Path) -> Path:
        target = root.parent / name
        members = dataset_members(root, prefix) if keep_dataset else []
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            for member, data in members + list(extra):
                zf.writestr(member, data)
        if patch is not None:
            target.write_bytes(patch(target.read_bytes()))
        return target
    return mutate


def symlink_member(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def zip_bomb(root: Path) -> Path:
    """A member of 50 MiB of zeros compressed to ~50 KiB, written in chunks (fast)."""
    target = root.parent / "bomb.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in dataset_members(root):
            zf.writestr(name, data)
        with zf.open("zeros.bin", "w") as out:
            chunk = bytes(1 << 20)
            for _ in range(50):
                out.write(chunk)
    return target


def lying_bomb(root: Path) -> Path:
    """5 MiB of zeros whose headers claim 100 bytes: the size checks pass, extraction must not."""
    target = zipped([("zeros.bin", bytes(5 << 20))])(root)
    buf = bytearray(target.read_bytes())
    for sig, size_at, len_at, name_at in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
        i = buf.find(sig)
        while i >= 0:
            n = struct.unpack("<H", buf[i + len_at:i + len_at + 2])[0]
            if buf[i + name_at:i + name_at + n] == b"zeros.bin":
                buf[i + size_at:i + size_at + 4] = struct.pack("<I", 100)
            i = buf.find(sig, i + 4)
    target.write_bytes(bytes(buf))
    return target


def set_zip_flags(raw: bytes, flag: int = 0, method: int | None = None) -> bytes:
    """Set general-purpose flag bits / the compression method of every member (both headers)."""
    buf = bytearray(raw)
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        i = buf.find(sig)
        while i >= 0:
            buf[i + flag_at] |= flag
            if method is not None:
                buf[i + method_at:i + method_at + 2] = struct.pack("<H", method)
            i = buf.find(sig, i + 4)
    return bytes(buf)


def corrupt_member_data(raw: bytes) -> bytes:
    """Flip bytes inside the first member's compressed data (CRC/deflate failure on read)."""
    buf = bytearray(raw)
    i = buf.find(b"PK\x03\x04")
    name_len, extra_len = struct.unpack("<HH", buf[i + 26:i + 30])
    start = i + 30 + name_len + extra_len
    for k in range(start + 2, start + 12):
        buf[k] ^= 0xFF
    return bytes(buf)


# ----------------------------------------------------------------------------- case tables

@dataclass
class Bad:
    """A broken dataset: ``load_dataset`` must raise DataError naming ``file`` and ``words``."""

    name: str
    mutate: Callable[[Path], Path | None]
    file: str | None
    words: tuple[str, ...] = ()
    line: int | None = None
    row: int | None = None
    kwargs: dict = field(default_factory=dict)
    post: Callable[[Path], None] | None = None  # extra checks on tmp_path afterwards
    cli: bool = True  # also run through the CLI


@dataclass
class Good:
    """A variant that must be accepted; ``check(ds)`` asserts what it should look like."""

    name: str
    mutate: Callable[[Path], Path | None]
    check: Callable[[Dataset], None] = lambda ds: None
    kwargs: dict = field(default_factory=dict)


C, Q, CI, QI = f"{EMB}/corpus.npy", f"{EMB}/queries.npy", f"{EMB}/corpus_ids.txt", f"{EMB}/query_ids.txt"
QR = "qrels/test.tsv"
MARKER = "PWNED"
LESS = ("less data than its header",)
IN_ZIP = "ds.zip (member emb/toy/corpus.npy)"


def no_marker(tmp: Path) -> None:
    assert not list(tmp.rglob(MARKER)) and not (tmp / MARKER).exists(), "a pickle was executed"


def evil_object_array(rel: str):
    def mutate(root: Path) -> None:
        arr = np.empty(2, dtype=object)
        arr[0], arr[1] = Evil(root.parent / MARKER), 1.0
        np.save(root / rel, arr, allow_pickle=True)
    return mutate


def evil_raw_pickle(rel: str):
    def mutate(root: Path) -> None:
        (root / rel).write_bytes(pickle.dumps(Evil(root.parent / MARKER)))
    return mutate


def evil_pickle_in_zip(root: Path) -> Path:
    evil_object_array(C)(root)
    return zipped()(root)


def absolute_member() -> tuple[Callable, Callable]:
    target = Path(tempfile.gettempdir()) / f"nudge-evil-{uuid.uuid4().hex}"

    def post(tmp: Path) -> None:
        assert not target.exists(), f"{target} was written"
    return zipped([(str(target), b"evil")]), post


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
BAD = [c for c in BAD_AND_GOOD if isinstance(c, Bad)]
GOOD = [c for c in BAD_AND_GOOD if isinstance(c, Good)]
assert len({c.name for c in BAD_AND_GOOD}) == len(BAD_AND_GOOD), "case names must be unique"


# ----------------------------------------------------------------------------- helpers

def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and mtime: to prove nothing was written."""
    return {p.relative_to(folder).as_posix():
            None if p.is_dir() else (p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture()
def sandbox(tmp_path, monkeypatch):
    """A valid dataset at tmp_path/ds; temporary folders (zip extraction) go to tmp_path/systmp."""
    systmp = tmp_path / "systmp"
    systmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(systmp))
    write_valid(tmp_path / "ds")
    return tmp_path


def prepare(case, tmp: Path) -> tuple[Path, dict]:
    target = case.mutate(tmp / "ds") or tmp / "ds"
    kwargs = dict(case.kwargs)
    if "extract_dir" in kwargs:  # an explicit extraction folder under tmp/x
        kwargs["extract_dir"] = tmp / "x" / "extract"
    return target, kwargs


def check_message(exc: DataError, case: Bad) -> str:
    msg = str(exc)
    assert type(exc) is DataError
    assert len(msg) > 20 and "\n" not in msg, msg
    if case.file is not None:
        assert case.file in msg, f"message does not name {case.file!r}: {msg}"
    for word in case.words:
        assert word.lower() in msg.lower(), f"message lacks {word!r}: {msg}"
    if case.line is not None:
        assert exc.line == case.line and f"line {case.line}:" in msg, msg
    if case.row is not None:
        assert exc.row == case.row and f"row {case.row}:" in msg, msg
    return msg


# ----------------------------------------------------------------------------- Python API

@pytest.mark.parametrize("case", BAD, ids=lambda c: c.name)
def test_load_refuses(case, sandbox):
    target, kwargs = prepare(case, sandbox)
    before = snapshot(sandbox)
    with pytest.raises(DataError) as info:
        load_dataset(target, **kwargs)
    check_message(info.value, case)
    after = snapshot(sandbox)
    if "extract_dir" in kwargs:  # only the named extraction folder may have appeared
        after = {k: v for k, v in after.items() if not k.startswith("x/")}
        before = {k: v for k, v in before.items() if not k.startswith("x/")}
    assert after == before, "files were written or changed outside the output paths"
    assert not list((sandbox / "systmp").iterdir()), "temporary extraction folder left behind"
    assert not (sandbox / MARKER).exists()
    if case.post:
        case.post(sandbox)


@pytest.mark.parametrize("case", GOOD, ids=lambda c: c.name)
def test_load_accepts(case, sandbox):
    target, kwargs = prepare(case, sandbox)
    ds = load_dataset(target, **kwargs)
    assert ds.n_records == N_REC and ds.dim == DIM and ds.query_emb.shape == (N_Q, DIM)
    assert ds.corpus_emb.dtype == np.float32
    case.check(ds)
    assert not list((sandbox / "systmp").iterdir())


def test_evil_pickle_is_live(tmp_path):
    """Control: the payload used above really would create the marker if it were unpickled."""
    pickle.loads(pickle.dumps(Evil(tmp_path / MARKER)))
    assert (tmp_path / MARKER).exists()


ARRAY_CASES = [
    ("1-D corpus", dict(corpus_emb=CORPUS.ravel()), "corpus_emb", "2-D"),
    ("3-D queries", dict(query_emb=QUERIES[None]), "query_emb", "2-D"),
    ("list of lists with NaN", dict(corpus_emb=with_cell(CORPUS, 5, 0, np.nan).tolist()), "corpus_emb, row 5",
     "finite"),
    ("int corpus", dict(corpus_emb=np.ones((N_REC, DIM), int)), "corpus_emb", "floating"),
    ("object queries", dict(query_emb=QUERIES.astype(object)), "query_emb", "dtype"),
    ("dim mismatch", dict(query_emb=QUERIES[:, :3]), "query_emb", "dimension"),
    ("too few corpus ids", dict(corpus_ids=CORPUS_IDS[:3]), "corpus_ids", "3 ids"),
    ("duplicate query ids", dict(query_ids=replace_at(QUERY_IDS, 1, "q0")), "query_ids", "duplicate"),
    ("unknown corpus id in qrels", dict(qrels={"q0": {"nope": 1}}), "qrels", "'nope'"),
    ("unknown query id in qrels", dict(qrels={"qq": {"d0": 1}}), "qrels", "'qq'"),
    ("no positive grade", dict(qrels={"q0": {"d0": 0}}), "qrels", "positive"),
]


@pytest.mark.parametrize("name,override,source,word", ARRAY_CASES, ids=[c[0] for c in ARRAY_CASES])
def test_arrays_refused(name, override, source, word):
    args = dict(corpus_emb=CORPUS, query_emb=QUERIES, qrels={"q0": {"d0": 1}, "q1": {"d1": 1}},
                corpus_ids=CORPUS_IDS, query_ids=QUERY_IDS)
    args.update(override)
    with pytest.raises(DataError) as info:
        dataset_from_arrays(**args)
    assert str(info.value).startswith(source) and word in str(info.value)


# ----------------------------------------------------------------------------- splits

@pytest.fixture()
def dataset(sandbox) -> Dataset:
    return load_dataset(sandbox / "ds")


LAB = [f"q{j}" for j in range(N_LAB)]
GOOD_SPLIT = {"train": LAB[:6], "val": LAB[6:8], "test": LAB[8:]}
SPLIT_CASES = [
    ("invalid-json", '{"train": [', ("json",), 1),
    ("invalid-json-line3", '{\n"train": ["q0"],\n"val": [q1]}', ("json",), 3),
    ("trailing-comma", '{"train": ["q0"],}', ("json",), 1),
    ("empty-file", "", ("json",), 1),
    ("list", json.dumps(LAB), ("json object",), None),
    ("string", '"train"', ("json object",), None),
    ("null", "null", ("json object",), None),
    ("unknown-key", json.dumps({**GOOD_SPLIT, "dev": []}), ("unknown keys", "'dev'"), None),
    ("typo-key", json.dumps({"trian": LAB[:6], "val": LAB[6:8], "test": LAB[8:]}), ("'trian'",), None),
    ("string-value", json.dumps({**GOOD_SPLIT, "train": "q0,q1"}), ('"train"', "list"), None),
    ("dict-value", json.dumps({**GOOD_SPLIT, "val": {"q6": 1}}), ('"val"', "list"), None),
    ("float-ids", json.dumps({**GOOD_SPLIT, "test": [8.0, 9.0]}), ('"test"', "list"), None),
    ("null-id", json.dumps({**GOOD_SPLIT, "test": [None]}), ('"test"', "list"), None),
    ("nested-list", json.dumps({**GOOD_SPLIT, "train": [LAB[:6]]}), ('"train"', "list"), None),
    ("unknown-id", json.dumps({**GOOD_SPLIT, "test": ["q8", "zzz"]}), ("'zzz'", "not in the dataset"), None),
    ("unknown-int-id", json.dumps({**GOOD_SPLIT, "val": [6, 7]}), ("'6'",), None),
    ("unlabelled-id", json.dumps({**GOOD_SPLIT, "train": LAB[:6] + ["q11"]}), ("'q11'", "no positive"), None),
    ("unlabelled-in-ood", json.dumps({**GOOD_SPLIT, "ood": ["q10"]}), ("'q10'",), None),
    ("query-in-two-parts", json.dumps({**GOOD_SPLIT, "test": ["q8", "q9", "q0"]}), ("'q0'", "both"), None),
    ("query-in-test-and-ood", json.dumps({**GOOD_SPLIT, "ood": ["q9"]}), ("'q9'", "both"), None),
    ("duplicate-in-list", json.dumps({**GOOD_SPLIT, "train": LAB[:6] + ["q1"]}), ("'q1'", "twice"), None),
    ("empty-train", json.dumps({**GOOD_SPLIT, "train": []}), ("train split is empty",), None),
    ("empty-val", json.dumps({**GOOD_SPLIT, "val": []}), ("val split is empty",), None),
    ("empty-test", json.dumps({**GOOD_SPLIT, "test": []}), ("test split is empty",), None),
    ("missing-val", json.dumps({"train": LAB[:6], "test": LAB[8:]}), ("val split is empty",), None),
    ("empty-object", "{}", ("empty",), None),
    ("latin1", b'{"train": ["q\xe9"]}', ("utf-8",), None),
]


@pytest.mark.parametrize("name,content,words,line", SPLIT_CASES, ids=[c[0] for c in SPLIT_CASES])
def test_split_file_refused(name, content, words, line, dataset, sandbox):
    path = sandbox / "split.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError) as info:
        split_from_json(path, dataset)
    msg = str(info.value)
    assert "split.json" in msg and type(info.value) is DataError
    for word in words:
        assert word.lower() in msg.lower(), msg
    if line is not None:
        assert info.value.line == line, msg


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_split_path_refused(kind, dataset, sandbox):
    path = sandbox / "split.json"
    if kind == "folder":
        path.mkdir()
    with pytest.raises(DataError) as info:
        split_from_json(path, dataset)
    assert "split.json" in str(info.value)


def test_split_file_accepts_bom_and_int_ids(dataset, sandbox):
    path = sandbox / "split.json"
    path.write_text("\ufeff" + json.dumps(GOOD_SPLIT))
    split = split_from_json(path, dataset)
    assert split.sizes() == {"train": 6, "val": 2, "test": 2}


PAPER_CASES = [
    ("three-labelled", dict(query_ids=["q0", "q1", "q2"]), ("val split is empty",)),
    ("one-labelled", dict(query_ids=["q0"]), ("empty",)),
    ("no-labelled", dict(query_ids=[]), ("empty",)),
    ("val-zero", dict(val_frac=0.0), ("val split is empty",)),
    ("test-zero", dict(test_frac=0.0), ("test split is empty",)),
    ("negative-val", dict(val_frac=-0.1), ("ratios",)),
    ("negative-test", dict(test_frac=-0.5), ("ratios",)),
    ("sum-one", dict(val_frac=0.5, test_frac=0.5), ("sum to less than 1",)),
    ("sum-over-one", dict(val_frac=0.7, test_frac=0.6), ("sum",)),
    ("val-one", dict(val_frac=1.0, test_frac=0.0), ("ratios",)),
    ("nan-ratio", dict(val_frac=float("nan")), ("ratios",)),
    ("max-val-zero", dict(max_val=0), ("val split is empty",)),
    ("max-test-zero", dict(max_test=0), ("test split is empty",)),
    ("bad-layout", dict(layout="test-first"), ("layout",)),
]


@pytest.mark.parametrize("name,kwargs,words", PAPER_CASES, ids=[c[0] for c in PAPER_CASES])
def test_paper_split_refused(name, kwargs, words):
    args = dict(query_ids=LAB)
    args.update(kwargs)
    with pytest.raises(DataError) as info:
        paper_split(**args)
    for word in words:
        assert word in str(info.value)
    assert str(info.value).startswith("split")


def test_qrels_split_needs_train_file(dataset):
    with pytest.raises(DataError, match="train.tsv and qrels/test.tsv"):
        split_from_qrels_files(dataset)


# ----------------------------------------------------------------------------- OOD query sets

def write_ood(folder: Path, queries: np.ndarray | None = None, ids: list[str] | None = None,
              qrels: list[str] | None = None, model: str = MODEL) -> Path:
    queries = QUERIES[:4] if queries is None else queries
    ids = [f"o{j}" for j in range(len(queries))] if ids is None else ids
    qrels = [f"o{j}\td{j}\t1" for j in range(len(ids))] if qrels is None else qrels
    (folder / "emb" / model).mkdir(parents=True)
    (folder / "qrels").mkdir()
    np.save(folder / "emb" / model / "queries.npy", queries)
    (folder / "emb" / model / "query_ids.txt").write_text("".join(i + "\n" for i in ids))
    (folder / "qrels" / "test.tsv").write_text("\n".join([HEADER] + qrels) + "\n")
    return folder


OOD_CASES = [
    ("missing-folder", lambda f: f.parent / "nowhere", "nowhere", ("no such folder",)),
    ("plain-file", lambda f: (f.parent / "ood.txt", (f.parent / "ood.txt").write_text("x"))[0], "ood.txt",
     ("not a folder",)),
    ("dim-mismatch", lambda f: write_ood(f, queries=QUERIES[:4, :5]), "queries.npy", ("dimension 5",)),
    ("unknown-corpus-id", lambda f: write_ood(f, qrels=["o0\td0\t1", "o1\tnope\t1"]), "test.tsv",
     ("'nope'",)),
    ("unknown-query-id", lambda f: write_ood(f, qrels=["o0\td0\t1", "x9\td1\t1"]), "test.tsv", ("'x9'",)),
    ("other-model", lambda f: write_ood(f, model="other"), "ood", ("'toy'", "available")),
    ("nan-query", lambda f: write_ood(f, queries=with_cell(QUERIES[:4], 2, 0, np.nan)), "queries.npy",
     ("finite",)),
    ("id-count", lambda f: write_ood(f, ids=["o0", "o1"]), "query_ids.txt", ("2 ids",)),
    ("no-qrels", lambda f: (write_ood(f), (f / "qrels" / "test.tsv").unlink())[0], "ood", ("qrels",)),
]


@pytest.mark.parametrize("name,build,file,words", OOD_CASES, ids=[c[0] for c in OOD_CASES])
def test_ood_refused(name, build, file, words, dataset, sandbox):
    path = build(sandbox / "ood")
    with pytest.raises(DataError) as info:
        load_query_set(path, dataset)
    assert type(info.value) is DataError and file in str(info.value)
    for word in words:
        assert word in str(info.value)


# ----------------------------------------------------------------------------- command line

@pytest.fixture()
def no_fit(monkeypatch):
    """Fail the test if the CLI gets as far as fitting anything."""
    calls = []
    monkeypatch.setattr(cli, "run_experiment", lambda *a, **k: calls.append(a) or pytest.fail("fitted"))
    return calls


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(code: int, out: str, err: str, *words: str) -> str:
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err and out == ""
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


CLI_FROM_BAD = [c for c in BAD if c.cli][::2]


@pytest.mark.parametrize("case", CLI_FROM_BAD, ids=lambda c: c.name)
def test_cli_refuses_dataset(case, sandbox, capsys, no_fit):
    target, _ = prepare(case, sandbox)
    out, saved = sandbox / "results" / "r.json", sandbox / "saved"
    before = snapshot(sandbox)
    code, stdout, err = run_cli(["run", str(target), "--methods", "none,nudge-m", "--out", str(out),
                                 "--save-embeddings", str(saved)], capsys)
    line = assert_one_error_line(code, stdout, err, *case.words)
    if case.file:
        assert case.file in line
    if case.line is not None:
        assert f"line {case.line}:" in line
    if case.row is not None:
        assert f"row {case.row}:" in line
    assert not out.exists() and not out.parent.exists() and not saved.exists()
    assert snapshot(sandbox) == before
    assert not no_fit
    if case.post:
        case.post(sandbox)


def write_split(tmp: Path, obj) -> str:
    path = tmp / "split.json"
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


#: (name, extra args (callable of tmp_path), words in the error line)
CLI_ARG_CASES = [
    ("unknown-method", lambda t: ["--methods", "none,nudge-x"], ("nudge-x",)),
    ("empty-methods", lambda t: ["--methods", ","], ("method",)),
    ("grid-words", lambda t: ["--gamma-grid", "a,b"], ("--gamma-grid",)),
    ("grid-empty", lambda t: ["--gamma-grid", ""], ("--gamma-grid",)),
    ("grid-two-parts", lambda t: ["--gamma-grid", "0:1"], ("--gamma-grid",)),
    ("grid-zero-step", lambda t: ["--gamma-grid", "0:1:0"], ("--gamma-grid",)),
    ("grid-reversed", lambda t: ["--gamma-grid", "1:0:0.1"], ("--gamma-grid",)),
    ("grid-inf", lambda t: ["--gamma-grid", "0:inf:0.1"], ("--gamma-grid",)),
    ("grid-nan", lambda t: ["--gamma-grid", "nan,0.1"], ("--gamma-grid",)),
    ("grid-huge", lambda t: ["--gamma-grid", "0:1:1e-9"], ("--gamma-grid", "10000")),
    ("grid-negative", lambda t: ["--gamma-grid=-0.1,0.1"], ("--gamma-grid", ">= 0")),
    ("grid-above-4", lambda t: ["--gamma-grid", "0:5:1"], ("--gamma-grid", "[0, 4]")),
    ("gamma-negative", lambda t: ["--gamma", "-1"], ("--gamma", ">= 0")),
    ("gamma-nan", lambda t: ["--gamma", "nan"], ("--gamma", "finite")),
    ("gamma-word", lambda t: ["--gamma", "big"], ("--gamma",)),
    ("gamma-m-negative", lambda t: ["--gamma-m", "-0.5"], ("--gamma-m",)),
    ("gamma-n-above-4", lambda t: ["--gamma-n", "4.5"], ("--gamma-n", "[0, 4]")),
    ("gamma-n-inf", lambda t: ["--gamma-n", "inf"], ("--gamma-n",)),
    ("gamma-above-4-with-nudge-n", lambda t: ["--gamma", "5", "--methods", "nudge-n"],
     ("--gamma", "nudge-n")),
    ("val-k-zero", lambda t: ["--val-k", "0"], ("--val-k", "[1, 1000]")),
    ("val-k-negative", lambda t: ["--val-k", "-3"], ("--val-k",)),
    ("val-k-float", lambda t: ["--val-k", "1.5"], ("--val-k",)),
    ("adaptor-epochs-zero", lambda t: ["--adaptor-epochs", "0"], ("--adaptor-epochs",)),
    ("max-file-mb-small", lambda t: ["--max-file-mb", "0.0001"],
     ("corpus_ids.txt", "110 bytes", "limit of 104 bytes")),
    ("max-file-mb-npy", lambda t: ["--max-file-mb", "0.00101"], ("larger than the limit", "corpus.npy")),
    ("max-file-mb-zero", lambda t: ["--max-file-mb", "0"], ("--max-file-mb", "positive")),
    ("max-file-mb-negative", lambda t: ["--max-file-mb", "-1"], ("--max-file-mb",)),
    ("ood-missing", lambda t: ["--ood", str(t / "nowhere")], ("nowhere", "no such folder")),
    ("ood-file", lambda t: ["--ood", str(write_ood(t / "o").parent / "o" / "qrels" / "test.tsv")],
     ("not a folder",)),
    ("ood-dim", lambda t: ["--ood", str(write_ood(t / "o", queries=QUERIES[:4, :3]))], ("dimension 3",)),
    ("ood-unknown-corpus", lambda t: ["--ood", str(write_ood(t / "o", qrels=["o0\tzz\t1"]))],
     ("'zz'", "line 2", "test.tsv")),
    ("splits-and-qrels", lambda t: ["--qrels-splits", "--splits", write_split(t, GOOD_SPLIT)],
     ("not allowed",)),
    ("unknown-option", lambda t: ["--gama", "0.1"], ("--gama",)),
    ("bad-layout", lambda t: ["--layout", "random"], ("--layout",)),
    ("splits-missing-file", lambda t: ["--splits", str(t / "none.json")], ("none.json",)),
    ("splits-bad-json", lambda t: ["--splits", write_split(t, "{oops")], ("split.json", "json")),
    ("splits-unknown-id", lambda t: ["--splits", write_split(t, {**GOOD_SPLIT, "test": ["q8", "zz"]})],
     ("'zz'",)),
    ("splits-overlap", lambda t: ["--splits", write_split(t, {**GOOD_SPLIT, "val": ["q0"]})], ("both",)),
    ("ratios-sum", lambda t: ["--val-frac", "0.6", "--test-frac", "0.5"], ("--val-frac + --test-frac",)),
    ("ratios-negative", lambda t: ["--val-frac", "-0.1"], ("--val-frac", "between 0 and 1")),
    ("qrels-splits-no-train", lambda t: ["--qrels-splits"], ("train.tsv",)),
    ("unknown-embeddings", lambda t: ["--embeddings", "bert"], ("'bert'", "'toy'")),
]


@pytest.mark.parametrize("name,extra,words", CLI_ARG_CASES, ids=[c[0] for c in CLI_ARG_CASES])
def test_cli_refuses_arguments(name, extra, words, sandbox, capsys, no_fit):
    out, saved = sandbox / "results" / "r.json", sandbox / "saved"
    argv = ["run", str(sandbox / "ds"), "--methods", "none,nudge-m", *extra(sandbox), "--out", str(out),
            "--save-embeddings", str(saved)]
    before = snapshot(sandbox)
    code, stdout, err = run_cli(argv, capsys)
    assert_one_error_line(code, stdout, err, *words)
    assert not out.parent.exists() and not saved.exists()
    assert snapshot(sandbox) == before
    assert not no_fit


@pytest.mark.parametrize("argv", [[], ["fly"], ["run"], ["run", "a", "b"]],
                         ids=["none", "bad-command", "no-dataset", "two-datasets"])
def test_cli_usage_errors(argv, capsys):
    code, stdout, err = run_cli(argv, capsys)
    assert_one_error_line(code, stdout, err)


def test_cli_mutually_exclusive_may_exit_2(sandbox, capsys):
    """--splits with --seed: argparse's own refusal (SystemExit 2) is acceptable too."""
    try:
        code = cli.main(["run", str(sandbox / "ds"), "--splits", "x.json", "--seed", "1"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_cli_valid_dataset_runs(sandbox, capsys):
    """Positive control for the CLI cases: the untouched dataset runs and writes its outputs."""
    out, saved = sandbox / "results" / "r.json", sandbox / "saved"
    code, stdout, err = run_cli(["run", str(sandbox / "ds"), "--methods", "none,nudge-m", "--out", str(out),
                                 "--save-embeddings", str(saved)], capsys)
    assert code == 0, err
    assert json.loads(out.read_text())["n_records"] == N_REC
    assert (saved / "nudge-m" / "corpus.npy").is_file()


def test_cli_refuses_out_equal_to_save_embeddings(sandbox, capsys, no_fit):
    target = str(sandbox / "same")
    code, stdout, err = run_cli(["run", str(sandbox / "ds"), "--out", target, "--save-embeddings",
                                 target], capsys)
    assert_one_error_line(code, stdout, err, "same path")
    assert not no_fit


@pytest.mark.parametrize("flag,kind", [("--out", "folder"), ("--save-embeddings", "file")])
def test_cli_refuses_unwritable_outputs_before_fitting(flag, kind, sandbox, capsys, no_fit):
    target = sandbox / "target"
    if kind == "folder":
        target.mkdir()
    else:
        target.write_text("x")
    before = snapshot(sandbox)
    code, stdout, err = run_cli(["run", str(sandbox / "ds"), "--methods", "none,nudge-m", flag,
                                 str(target)], capsys)
    assert_one_error_line(code, stdout, err, flag, "target")
    assert snapshot(sandbox) == before
    assert not no_fit
