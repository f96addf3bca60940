"""Readers for the files of a dataset folder, each raising :class:`DataError` with file and line.

Nothing here executes or unpickles input: ``.npy`` files are opened with ``allow_pickle=False``,
zip archives are checked member by member before anything is written, JSON is parsed as data.
"""

from __future__ import annotations

import gzip
import json
import lzma
import math
import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

#: Rows checked per block for NaN/inf/all-zero rows, so memory-mapped input stays on disk.
CHECK_BLOCK_ROWS = 65536
#: Zip archives that expand more than this many times their size are refused (zip bombs).
MAX_ZIP_RATIO = 200
#: Default cap on what a zip archive may expand to.
MAX_ZIP_BYTES = 8 * 2**30
#: Compression methods the standard library can read.
ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
#: A decimal number as written in a qrels file (float() alone would take "1_0", "nan", "١").
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def check_size(path: Path, max_bytes: int | None) -> None:
    """Refuse a file larger than ``max_bytes`` (None = no limit)."""
    if max_bytes is None:
        return
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(f"file is {_size(size)}, larger than the limit of {_size(max_bytes)}",
                        str(path))


def _size(n: int) -> str:
    return f"{n} bytes" if n < 2**20 else f"{n / 2**20:.1f} MiB"


def read_text_lines(path: Path, max_bytes: int | None = None) -> list[str]:
    """Lines of a UTF-8 text file (``.gz`` transparently), without line ends.

    Raises DataError naming the first line that is not valid UTF-8.
    """
    check_size(path, max_bytes)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:  # truncated or corrupt gzip
        raise DataError(f"cannot read the file ({exc})", str(path)) from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"not valid UTF-8 (byte {exc.start}); save the file as UTF-8",
                        str(path), line=line) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise DataError("contains a NUL byte; expected a text file", str(path), line=line)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def read_id_list(path: Path, max_bytes: int | None = None) -> list[str]:
    """One id per line, in row order. Blank lines and duplicate ids are errors."""
    lines = read_text_lines(path, max_bytes)
    if not lines:
        raise DataError("the id list is empty; expected one id per line", str(path))
    seen: dict[str, int] = {}
    ids = []
    for number, raw in enumerate(lines, start=1):
        ident = raw.strip()
        if not ident:
            raise DataError("blank id; expected one non-empty id per line", str(path), line=number)
        if ident in seen:
            raise DataError(f"duplicate id {ident!r} (first on line {seen[ident]})", str(path),
                            line=number)
        seen[ident] = number
        ids.append(ident)
    return ids


def read_jsonl_texts(path: Path, max_bytes: int | None = None) -> dict[str, str]:
    """``{_id: text}`` from a BEIR ``corpus.jsonl``/``queries.jsonl`` (title + " " + text, stripped)."""
    texts: dict[str, str] = {}
    for number, raw in enumerate(read_text_lines(path, max_bytes), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON ({exc.msg})", str(path), line=number) from None
        if not isinstance(obj, dict) or "_id" not in obj:
            raise DataError('expected a JSON object with an "_id" field', str(path), line=number)
        ident = obj["_id"]
        if isinstance(ident, bool) or not isinstance(ident, (str, int)) or not str(ident).strip():
            raise DataError(f'"_id" is {ident!r}; expected a non-empty string or integer', str(path),
                            line=number)
        ident = str(ident).strip()
        if ident in texts:
            raise DataError(f"duplicate _id {ident!r}", str(path), line=number)
        parts = [obj.get("title"), obj.get("text")]
        texts[ident] = " ".join(str(p) for p in parts if p).strip()
    return texts


def read_qrels(path: Path, max_bytes: int | None = None,
               line_of: dict[tuple[str, str], int] | None = None) -> dict[str, dict[str, int]]:
    """``{query_id: {corpus_id: grade}}`` from a BEIR qrels TSV with header ``query-id corpus-id score``.

    Grades must be integers (``"1.0"`` is accepted as 1). A repeated (query, record) pair is an
    error. Rows keep their file order, so the order of first appearance of queries is preserved.
    ``line_of``, when given, is filled with each (query, record) pair's line number (for messages).
    """
    lines = read_text_lines(path, max_bytes)
    if not lines:
        raise DataError("the qrels file is empty; expected a header 'query-id<TAB>corpus-id<TAB>score'",
                        str(path))
    header = lines[0].split("\t")
    if [h.strip().lower() for h in header] != ["query-id", "corpus-id", "score"]:
        raise DataError(f"expected the header 'query-id<TAB>corpus-id<TAB>score', found {lines[0]!r}",
                        str(path), line=1)
    qrels: dict[str, dict[str, int]] = {}
    for number, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        cells = raw.split("\t")
        if len(cells) != 3:
            raise DataError(f"expected 3 tab-separated columns, found {len(cells)}", str(path),
                            line=number)
        qid, did, score = (c.strip() for c in cells)
        if not qid or not did:
            raise DataError("empty query-id or corpus-id", str(path), line=number)
        try:
            if not _NUMBER.fullmatch(score):  # float() would also take "1_0" (= 10), "nan", "inf"
                raise ValueError(score)
            value = float(score)
        except ValueError:
            raise DataError(f"score {score!r} is not a number; expected an integer grade",
                            str(path), line=number) from None
        if not math.isfinite(value) or value != int(value):
            raise DataError(f"score {score!r} is not an integer grade", str(path), line=number)
        judged = qrels.setdefault(qid, {})
        if did in judged:
            raise DataError(f"duplicate judgement for query {qid!r} and record {did!r}", str(path),
                            line=number)
        judged[did] = int(value)
        if line_of is not None:
            line_of[(qid, did)] = number
    if not qrels:
        raise DataError("the qrels file has a header but no judgements", str(path))
    return qrels


def load_matrix(path: Path, what: str, max_bytes: int | None = None,
                notes: list[str] | None = None) -> np.ndarray:
    """A 2-D float32 matrix from ``.npy`` (memory-mapped when it already is float32).

    float16/float64 are converted to float32 (and the conversion is noted); NaN/inf and all-zero
    rows are errors naming the first bad row. ``allow_pickle=False`` always.
    """
    check_size(path, max_bytes)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", str(path)) from None
    if magic != b"\x93NUMPY":  # np.load would try pickle or zip; refuse before it does
        kind = "an .npz/zip archive" if magic.startswith(b"PK") else \
            "empty" if not magic else "not in the .npy format (no NUMPY header)"
        raise DataError(f"is {kind}; expected a single numeric array saved with numpy.save",
                        str(path))
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        msg = str(exc)
        if "allow_pickle" in msg or "Object arrays" in msg or "Python objects" in msg:
            raise DataError("holds Python objects (a pickled array); only numeric .npy files are "
                            "accepted, nothing is unpickled", str(path)) from None
        if "mmap length is greater" in msg:
            msg = "the file holds less data than its header describes; truncated or a wrong header"
        raise DataError(f"not a valid .npy file ({msg})", str(path)) from None
    except (OSError, EOFError, OverflowError) as exc:  # OverflowError: negative/huge shape
        raise DataError(f"not a valid .npy file ({exc})", str(path)) from None
    if isinstance(arr, np.memmap):  # a header that promises less data than the file holds
        extra = path.stat().st_size - arr.offset - arr.nbytes
        if extra > 0:
            raise DataError(f"holds {extra} bytes more than its header describes (shape {arr.shape}, "
                            f"dtype {arr.dtype}); the header or the data is wrong", str(path))
    return check_matrix(arr, str(path), what, notes)


def check_matrix(arr: np.ndarray, source: str, what: str, notes: list[str] | None = None) -> np.ndarray:
    """Validate an (n, dim) embedding matrix and return it as float32 (no copy when it already is)."""
    if not isinstance(arr, np.ndarray):
        raise DataError(f"expected a numpy array of {what}, got {type(arr).__name__}", source)
    if arr.dtype.hasobject or arr.dtype.fields is not None:
        raise DataError(f"has dtype {arr.dtype}; expected float32 {what}", source)
    if arr.ndim != 2:
        raise DataError(f"has shape {arr.shape}; expected a 2-D (rows, dim) matrix of {what}", source)
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"has shape {arr.shape}; expected at least one row and one column", source)
    if arr.dtype.kind != "f":
        raise DataError(f"has dtype {arr.dtype}; expected floating-point {what} (float32)", source)
    if arr.dtype != np.float32:
        if notes is not None:
            notes.append(f"{source}: converted {arr.dtype} to float32")
        with np.errstate(over="ignore", invalid="ignore"):  # overflow shows up as inf below
            arr = np.ascontiguousarray(arr, dtype=np.float32)
    for start in range(0, arr.shape[0], CHECK_BLOCK_ROWS):
        block = np.asarray(arr[start:start + CHECK_BLOCK_ROWS])
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            row = start + int(np.argmin(finite))
            raise DataError(f"contains NaN or infinite values; every {what} value must be finite",
                            source, row=row)
        nonzero = (block != 0).any(axis=1)
        if not nonzero.all():
            row = start + int(np.argmin(nonzero))
            raise DataError(f"is an all-zero vector; {what} need a direction", source, row=row)
    return arr


def safe_extract_zip(archive: Path, dest: Path, max_bytes: int = MAX_ZIP_BYTES,
                     max_ratio: float = MAX_ZIP_RATIO) -> Path:
    """Extract ``archive`` into ``dest`` after checking every member; returns ``dest``.

    Refused: members with absolute paths, ``..`` parts or drive letters, symlinks, more than
    ``max_bytes`` in all, or a total expansion above ``max_ratio`` times the archive size.
    Nothing is written before all checks pass.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"not a readable zip archive ({exc})", str(archive)) from None
    with zf:
        members = zf.infolist()
        if not members:
            raise DataError("the zip archive is empty", str(archive))
        total = 0
        for info in members:
            name = info.filename
            parts = Path(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise DataError(f"member {name!r} points outside the archive; refused", str(archive))
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise DataError(f"member {name!r} is a symbolic link; refused", str(archive))
            if info.flag_bits & 0x1:
                raise DataError(f"member {name!r} is encrypted; expected an unencrypted zip",
                                str(archive))
            if info.compress_type not in ZIP_METHODS:
                raise DataError(f"member {name!r} uses compression method {info.compress_type}; "
                                "expected stored, deflate, bzip2 or lzma", str(archive))
            total += info.file_size
        size = max(archive.stat().st_size, 1)
        if total > max_bytes:
            raise DataError(f"expands to {total / 2**20:.0f} MiB, more than the limit of "
                            f"{max_bytes / 2**20:.0f} MiB", str(archive))
        if total > 1_000_000 and total / size > max_ratio:
            raise DataError(f"expands {total / size:.0f} times its size (limit {max_ratio}); "
                            "refused as a possible zip bomb", str(archive))
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for info in members:
            target = (dest / info.filename).resolve()
            if root != target and root not in target.parents:  # belt and braces
                raise DataError(f"member {info.filename!r} points outside the archive", str(archive))
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            try:
                with zf.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > info.file_size:
                            raise DataError(f"member {info.filename!r} is larger than its header "
                                            "says; refused", str(archive))
                        out.write(chunk)
            except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError) as exc:
                raise DataError(f"member {info.filename!r} is corrupt ({exc})", str(archive)) from None
    return dest


def dataset_root(folder: Path, depth: int = 0) -> Path:
    """The folder holding ``emb/`` or ``qrels/``: ``folder`` itself or its only sub-folder."""
    if (folder / "emb").is_dir() or (folder / "qrels").is_dir():
        return folder
    subdirs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("__", "."))]
    if len(subdirs) == 1 and depth < 8:  # the limit stops symlink loops
        return dataset_root(subdirs[0], depth + 1)
    return folder


def remove_tree(path: Path) -> None:
    """Delete a temporary extraction folder, ignoring what is already gone."""
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
