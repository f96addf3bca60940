"""Readers for the text files and zip archives of a dataset folder, each raising
:class:`DataError` with file and line.

Nothing here executes or unpickles input: zip archives are checked member by member before anything
is written, ``.gz`` files are decompressed as a stream under a cap that counts decompressed bytes,
and JSON is parsed as data by :func:`parse_json`, the engine's one JSON parser. User input echoed in
a message is cut by :func:`excerpt`. (``.npy`` matrices: :mod:`nudge_core.matrices`.)
"""

from __future__ import annotations

import errno
import gzip
import json
import lzma
import re
import reprlib
import shutil
import stat
import sys
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from .errors import DataError
from .ids import IdList

#: Zip archives that expand more than this many times their size are refused (zip bombs).
MAX_ZIP_RATIO = 200
#: Default cap on what a zip archive may expand to, all members together.
MAX_ZIP_BYTES = 8 * 2**30
#: Default cap on the number of members (files and folders) of a zip archive.
MAX_ZIP_MEMBERS = 10_000
#: What one ``.gz`` file may decompress to when the caller gives no ``max_bytes`` (1 GiB).
MAX_GZ_BYTES = 2**30
#: Echoed user input (ids, cells, member names) is cut to this many characters.
EXCERPT_CHARS = 80
#: Compression methods the standard library can read.
ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
#: Half of a UTF-16 surrogate pair: what a lone "\ud800" escape in JSON decodes to.
_SURROGATE = re.compile("[\ud800-\udfff]")
#: What matters for JSON nesting: escapes (skipped), quotes, brackets.
_JSON_TOKENS = re.compile(r'\\.|["\[\]{}]', re.DOTALL)
_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel, _SHORT_REPR.maxstring, _SHORT_REPR.maxother = 2, EXCERPT_CHARS, EXCERPT_CHARS


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``repr`` of ``value`` cut to about ``limit`` characters, for echoing user input.

    A longer string ends in "…" and its length; non-printable characters (a lone surrogate, a CR)
    come out escaped, so the result is always safe to print and to encode as UTF-8.
    """
    if not isinstance(value, str):
        if isinstance(value, int) and value.bit_length() > 3 * limit:  # repr() would refuse it
            return f"<an integer of about {value.bit_length() * 0.30103:,.0f} digits>"
        text = _SHORT_REPR.repr(value)
        return text if len(text) <= limit else text[:limit] + "…"
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value):,} characters)"


def cr_only_hint(text: str) -> str:
    """A hint to append when ``text`` holds a CR not followed by LF (old Mac line ends), else ""."""
    return "; the file uses CR-only line ends (old Mac): convert them to LF" \
        if re.search("\r(?!\n)", text) else ""


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


def _read_bytes(path: Path, max_bytes: int | None) -> bytearray | bytes:
    """The file's bytes; a ``.gz`` file decompressed as a stream that stops past ``max_bytes``
    decompressed bytes (:data:`MAX_GZ_BYTES` when None), so a gzip bomb never fills memory."""
    check_size(path, max_bytes)
    try:
        if path.suffix != ".gz":
            with open(path, "rb") as fh:
                return fh.read()
        cap = MAX_GZ_BYTES if max_bytes is None else max_bytes
        raw = bytearray()
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(min(1 << 20, cap + 1 - len(raw))):
                raw += chunk
                if len(raw) > cap:
                    raise DataError(f"decompresses to more than {_size(cap)}, the limit for one file; "
                                    "refused (a possible gzip bomb)", str(path))
        return raw
    except (OSError, EOFError, zlib.error) as exc:  # truncated or corrupt gzip, unreadable file
        detail = getattr(exc, "strerror", None) or exc
        raise DataError(f"cannot read the file ({detail})", str(path)) from None


def read_text_lines(path: Path, max_bytes: int | None = None) -> list[str]:
    """Lines of a UTF-8 text file (``.gz`` transparently), without line ends.

    ``max_bytes`` caps the file's size and, for ``.gz``, what it decompresses to. Raises DataError
    naming the first line that is not valid UTF-8.
    """
    text = _decode(_read_bytes(path, max_bytes), path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _decode(raw: bytearray | bytes, path: Path) -> str:
    """``raw`` (a text file's bytes) as text, without a UTF-8 byte-order mark; DataError naming
    the line of the first byte that is not UTF-8, else of the first NUL."""
    start = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = str(memoryview(raw)[start:], "utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, start + exc.start) + 1
        raise DataError(f"not valid UTF-8 (byte {start + exc.start}); save the file as UTF-8",
                        str(path), line=line) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError("contains a NUL byte; expected a text file", str(path), line=line)
    return text


def parse_json(text: str, source: str, line: int | None = None) -> object:
    """The value of JSON ``text``: the engine's one JSON parser.

    ``line`` is the line ``text`` starts on in ``source`` (for one line of a ``.jsonl`` file).
    Invalid JSON, a number of more digits than Python converts, and nesting too deep to parse are
    DataErrors naming ``source`` and the line.
    """
    first = 1 if line is None else line
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg}){cr_only_hint(text)}", source,
                        line=first + exc.lineno - 1) from None
    except ValueError:  # an integer past sys.get_int_max_str_digits()
        limit = sys.get_int_max_str_digits()
        found = re.search(rf"\d{{{limit + 1},}}", text)
        at, digits = (found.start(), len(found.group())) if found else (0, limit + 1)
        raise DataError(f"holds a number of {digits:,} digits; numbers may have at most {limit:,}",
                        source, line=first + text.count("\n", 0, at)) from None
    except RecursionError:
        depth, at = _deepest(text)
        raise DataError(f"JSON nested {depth:,} levels deep, too deep to read; expected an object "
                        "of plain values and lists", source,
                        line=first + text.count("\n", 0, at)) from None


def _deepest(text: str) -> tuple[int, int]:
    """(deepest nesting of JSON arrays/objects in ``text``, offset where it is first reached)."""
    depth = best = at = 0
    in_string = False
    for m in _JSON_TOKENS.finditer(text):
        tok = m.group()
        if tok == '"':
            in_string = not in_string
        elif in_string or tok[0] == "\\":
            continue
        elif tok in "[{":
            depth += 1
            if depth > best:
                best, at = depth, m.start()
        else:
            depth -= 1
    return best, at


def read_id_list(path: Path, max_bytes: int | None = None) -> IdList:
    """One id per line (stripped), in row order, as an :class:`~nudge_core.ids.IdList` (one numpy
    array, no Python string per id). Blank lines and duplicate ids are errors, the first in line
    order reported (a duplicate with the line it first appeared on); found with numpy (the
    ids' argsort, kept as the list's lookup), not a dict. The file is decoded
    :data:`ID_CHUNK_BYTES` at a time: its bytes, the array and one chunk of strings are held at
    once, never a list of all lines (~20 bytes per 8-byte id at the peak, 16 kept).
    """
    raw = _read_bytes(path, max_bytes)
    if b"\x00" in raw:
        _decode(raw, path)  # raises what read_text_lines raises: the first bad UTF-8, else the NUL
    chunks = _stripped_lines(raw, path)
    del raw  # the generator holds the bytes until it has decoded them all, then lets them go
    ids = IdList.from_chunks(chunks)
    if not len(ids):
        raise DataError("the id list is empty; expected one id per line", str(path))
    blank, dup = ids.first_blank(), ids.first_duplicate()
    if blank is not None and (dup is None or blank < dup[1]):
        raise DataError("blank id; expected one non-empty id per line", str(path), line=blank + 1)
    if dup is not None:
        raise DataError(f"duplicate id {excerpt(ids[dup[1]])} (first on line {dup[0] + 1})",
                        str(path), line=dup[1] + 1)
    return ids


#: Bytes of an id file decoded at a time by :func:`read_id_list` (cut after a line end).
ID_CHUNK_BYTES = 1 << 16


def _stripped_lines(raw: bytearray | bytes, path: Path) -> Iterator[list[str]]:
    """The stripped lines of ``raw``, a list per chunk of about :data:`ID_CHUNK_BYTES`, split as
    :func:`read_text_lines` splits the whole text (chunks end after a ``\\n``, which is never
    part of a UTF-8 sequence, so a bad byte is found where decoding the whole file finds it)."""
    view, size = memoryview(raw), len(raw)
    pos = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    while pos < size:
        cut = raw.find(b"\n", pos + ID_CHUNK_BYTES) if pos + ID_CHUNK_BYTES < size else -1
        end = size if cut < 0 else cut + 1
        try:
            text = str(view[pos:end], "utf-8")
        except UnicodeDecodeError:
            _decode(raw, path)  # raises the whole file's message: same byte, same line
            raise
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()
        yield [ln.strip() for ln in lines]
        pos = end


def read_jsonl_texts(path: Path, max_bytes: int | None = None,
                     notes: list[str] | None = None) -> dict[str, str]:
    """``{_id: text}`` from a BEIR ``corpus.jsonl``/``queries.jsonl`` (title + " " + text, stripped).

    A lone UTF-16 surrogate escape (``"\\ud800"``, not valid Unicode) is refused in an ``_id``, which
    must match an id exactly, and replaced by U+FFFD in a title or text, which are shown only
    (counted in ``notes``), so no text fails later when encoded as UTF-8.
    """
    texts: dict[str, str] = {}
    replaced: list[int] = []
    for number, raw in enumerate(read_text_lines(path, max_bytes), start=1):
        if not raw.strip():
            continue
        obj = parse_json(raw, str(path), line=number)
        if not isinstance(obj, dict) or "_id" not in obj:
            raise DataError('expected a JSON object with an "_id" field', str(path), line=number)
        ident = obj["_id"]
        if isinstance(ident, bool) or not isinstance(ident, (str, int)) or not str(ident).strip():
            raise DataError(f'"_id" is {excerpt(ident)}; expected a non-empty string or integer',
                            str(path), line=number)
        ident = str(ident).strip()
        parts = [obj.get("title"), obj.get("text")]
        for key, part in zip(("title", "text"), parts):
            if part is not None and not isinstance(part, (str, int, float)):
                raise DataError(f'"{key}" is a JSON {type(part).__name__}; expected a string',
                                str(path), line=number)
        text = " ".join(str(p) for p in parts if p).strip()
        if "\\u" in raw and (_SURROGATE.search(ident) or _SURROGATE.search(text)):
            if _SURROGATE.search(ident):
                raise DataError(f'"_id" {excerpt(ident)} holds a lone surrogate escape '
                                "(\\ud800-\\udfff), which is not a character; expected a valid "
                                "Unicode id",
                                str(path), line=number)
            text = _SURROGATE.sub("\ufffd", text)
            replaced.append(number)
        if ident in texts:
            raise DataError(f"duplicate _id {excerpt(ident)}", str(path), line=number)
        texts[ident] = text
    if replaced and notes is not None:
        notes.append(f"{path}: {len(replaced)} texts held lone surrogate escapes (\\ud800-\\udfff, "
                     f"not characters), shown as U+FFFD (first on line {replaced[0]})")
    return texts


def safe_extract_zip(archive: Path, dest: Path, *, max_bytes: int = MAX_ZIP_BYTES,
                     max_members: int = MAX_ZIP_MEMBERS, max_ratio: float = MAX_ZIP_RATIO) -> Path:
    """Extract ``archive`` into ``dest`` after checking every member; returns ``dest``.

    Refused: more than ``max_members`` members, more than ``max_bytes`` expanded in all, a total
    expansion above ``max_ratio`` times the archive size, members with absolute paths, ``..`` parts
    or drive letters, symlinks, encryption or an unknown compression method. Nothing is written
    before all checks pass; a member that cannot be written (its path clashes with another member's,
    or is too long) is an error naming it.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"not a readable zip archive ({exc})", str(archive)) from None
    with zf:
        members = zf.infolist()
        if not members:
            raise DataError("the zip archive is empty", str(archive))
        if len(members) > max_members:
            raise DataError(f"has {len(members):,} members, more than the limit of {max_members:,}",
                            str(archive))
        for info in members:
            _check_member(info, archive)
        total = sum(info.file_size for info in members)
        size = max(archive.stat().st_size, 1)
        if total > max_bytes:
            raise DataError(f"expands to {_size(total)}, more than the limit of {_size(max_bytes)}",
                            str(archive))
        if total > 1_000_000 and total / size > max_ratio:
            raise DataError(f"expands {total / size:.0f} times its size (limit {max_ratio}); "
                            "refused as a possible zip bomb", str(archive))
        for info in members:
            try:
                _extract_member(zf, info, dest, archive)
            except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError) as exc:
                raise DataError(f"member {excerpt(info.filename)} is corrupt ({exc})",
                                str(archive)) from None
            except OSError as exc:
                raise DataError(f"member {excerpt(info.filename)} cannot be extracted: "
                                f"{_write_problem(exc, info.filename)}", str(archive)) from None
    return dest


def _check_member(info: zipfile.ZipInfo, archive: Path) -> None:
    name = info.filename
    parts = Path(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise DataError(f"member {excerpt(name)} points outside the archive; refused", str(archive))
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DataError(f"member {excerpt(name)} is a symbolic link; refused", str(archive))
    if info.flag_bits & 0x1:
        raise DataError(f"member {excerpt(name)} is encrypted; expected an unencrypted zip",
                        str(archive))
    if info.compress_type not in ZIP_METHODS:
        raise DataError(f"member {excerpt(name)} uses compression method {info.compress_type}; "
                        "expected stored, deflate, bzip2 or lzma", str(archive))


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, archive: Path) -> None:
    """Write one checked member under ``dest``; never more bytes than its header declares."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    target = (dest / info.filename).resolve()
    if root != target and root not in target.parents:  # belt and braces
        raise DataError(f"member {excerpt(info.filename)} points outside the archive", str(archive))
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with zf.open(info) as src, open(target, "wb") as out:
        while chunk := src.read(1 << 20):
            written += len(chunk)
            if written > info.file_size:
                raise DataError(f"member {excerpt(info.filename)} is larger than its header says; "
                                "refused", str(archive))
            out.write(chunk)


def _write_problem(exc: OSError, name: str) -> str:
    """Why a member could not be written, in the archive's terms (never the extraction folder)."""
    if exc.errno == errno.ENAMETOOLONG:
        return f"its path ({len(name):,} characters) is too long for this file system"
    if exc.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
        return "its path clashes with another member (a file and a folder of the same name)"
    return exc.strerror or str(exc)


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
