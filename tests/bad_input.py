"""The bad-input harness: a tiny valid dataset, mutators that break one thing in it, zip builders,
the :class:`Bad`/:class:`Good` case types and the checks every case goes through.

Used by ``test_bad_input.py`` (the case tables of ``bad_input_cases.py``) and
``test_bad_input_limits.py``.
"""

from __future__ import annotations

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

from nudge_core.data import Dataset
from nudge_core.errors import DataError

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
    dim: int = DIM  # the dimension the loaded embeddings must have


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



# ----------------------------------------------------------------------------- checks

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
    assert 20 < len(msg) < 1000 and "\n" not in msg, msg  # input is echoed as a short excerpt
    if case.file is not None:
        assert case.file in msg, f"message does not name {case.file!r}: {msg}"
    for word in case.words:
        assert word.lower() in msg.lower(), f"message lacks {word!r}: {msg}"
    if case.line is not None:
        assert exc.line == case.line and f"line {case.line}:" in msg, msg
    if case.row is not None:
        assert exc.row == case.row and f"row {case.row}:" in msg, msg
    return msg
