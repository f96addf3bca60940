"""Embedding matrices: ``.npy`` files read without unpickling, validated, and checked for
degenerate-but-valid data (which only earns a note).

``.npy`` files are opened with ``allow_pickle=False`` after their header has been read and bounded
here, so numpy never parses a huge header and never sees a pickle.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .errors import DataError
from .files import check_size

#: Rows checked per block for NaN/inf/all-zero rows, so memory-mapped input stays on disk.
CHECK_BLOCK_ROWS = 65536
#: The most bytes a ``.npy`` header may take, padding included (numpy writes 64-byte multiples).
MAX_NPY_HEADER_BYTES = 2**20
#: The most characters of a ``.npy`` header without its padding: a dict of dtype, order and shape.
MAX_NPY_HEADER_TEXT = 10_000
#: Rows of a matrix compared with its row 0 when looking for degenerate data (then all rows, only
#: if every sampled row looked degenerate).
DEGENERATE_SAMPLE_ROWS = 1024
#: Two rows whose cosine is within this of 1 point in the same direction.
SAME_DIRECTION_TOL = 1e-6


def _npy_header(path: Path) -> int:
    """Check the magic string and the header of ``path``; returns the header's length in bytes."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
            if magic != b"\x93NUMPY":  # np.load would try pickle or zip; refuse before it does
                kind = "an .npz/zip archive" if magic.startswith(b"PK") else \
                    "empty" if not magic else "not in the .npy format (no NUMPY header)"
                raise DataError(f"is {kind}; expected a single numeric array saved with numpy.save",
                                str(path))
            version = fh.read(2)
            size_format = {b"\x01\x00": "<H", b"\x02\x00": "<I", b"\x03\x00": "<I"}.get(version)
            if size_format is None:
                raise DataError(f"not a valid .npy file (unknown format version {version!r})", str(path))
            raw_len = fh.read(struct.calcsize(size_format))
            if len(raw_len) < struct.calcsize(size_format):
                raise DataError("not a valid .npy file (the header is cut short)", str(path))
            length = struct.unpack(size_format, raw_len)[0]
            if length > MAX_NPY_HEADER_BYTES:
                raise DataError(f"not a valid .npy file (its header claims {length} bytes, more than "
                                f"the limit of {MAX_NPY_HEADER_BYTES})", str(path))
            header = fh.read(length)
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", str(path)) from None
    if len(header) < length:
        raise DataError("not a valid .npy file (the header is cut short)", str(path))
    text = len(header.rstrip(b" \t\n\x00"))
    if text > MAX_NPY_HEADER_TEXT:
        raise DataError(f"not a valid .npy file (its header holds {text} characters besides padding; "
                        f"a numpy header is a short dict, at most {MAX_NPY_HEADER_TEXT})", str(path))
    return length


def load_matrix(path: Path, what: str, max_bytes: int | None = None,
                notes: list[str] | None = None) -> np.ndarray:
    """A 2-D float32 matrix from ``.npy`` (memory-mapped when it already is float32).

    float16/float64 are converted to float32 (and the conversion is noted); NaN/inf and all-zero
    rows are errors naming the first bad row. ``allow_pickle=False`` always. A header padded past
    numpy's own 10,000-byte guard is valid (the padding is checked here, not parsed).
    """
    check_size(path, max_bytes)
    header_len = _npy_header(path)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False,
                      max_header_size=max(header_len + 1, MAX_NPY_HEADER_TEXT))
    except ValueError as exc:
        msg = str(exc)
        # numpy's words for an object (pickled) array, read whole or memory-mapped; its refusal of a
        # long header also names allow_pickle, which is why that word is not matched here
        if "Object arrays cannot be loaded" in msg or "Python objects in dtype" in msg:
            raise DataError("holds Python objects (a pickled array); only numeric .npy files are "
                            "accepted, nothing is unpickled", str(path)) from None
        if "mmap length is greater" in msg:
            msg = "the file holds less data than its header describes; truncated or a wrong header"
        raise DataError(f"not a valid .npy file ({msg.splitlines()[0]})", str(path)) from None
    except (OSError, EOFError, OverflowError, RecursionError, MemoryError) as exc:
        # OverflowError: negative/huge shape
        raise DataError(f"not a valid .npy file ({type(exc).__name__}: {exc})", str(path)) from None
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


def _directions(block: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in float64 (scaled by their largest component first, so neither
    1e30 nor 1e-30 overflows or underflows)."""
    block = np.asarray(block, dtype=np.float64)
    block = block / np.abs(block).max(axis=1, keepdims=True)
    return block / np.linalg.norm(block, axis=1, keepdims=True)


def _all_rows(arr: np.ndarray, test) -> bool:
    """``test(block)`` holds for a sample of rows and then (only if it did) for every block."""
    n = arr.shape[0]
    sample = np.unique(np.linspace(0, n - 1, min(n, DEGENERATE_SAMPLE_ROWS)).astype(np.int64))
    if not test(np.asarray(arr[sample])):
        return False
    return all(test(np.asarray(arr[s:s + CHECK_BLOCK_ROWS])) for s in range(0, n, CHECK_BLOCK_ROWS))


def _same_direction(block: np.ndarray, first: np.ndarray) -> bool:
    return bool((_directions(block) @ first >= 1 - SAME_DIRECTION_TOL).all())


def degenerate_notes(arr: np.ndarray, what: str) -> list[str]:
    """Warnings for a valid but degenerate (n, dim) matrix of ``what``: dimension 1, every row in
    the same direction, or one column holding every non-zero value. Linear in the rows, and only a
    sample of rows unless the sample is degenerate."""
    n, dim = arr.shape
    if dim == 1:
        return [f"{what} have dimension 1: every vector points one way or the opposite, so most "
                "similarities tie and metrics say little"]
    first = _directions(arr[:1])[0]
    if n > 1 and _all_rows(arr, lambda b: _same_direction(b, first)):
        return [f"all {n} {what} point in the same direction (as row 0): every similarity ties, so "
                "rankings and metrics say little"]
    column = int(np.argmax(first != 0))  # row 0 is not all zero (check_matrix)
    others = np.arange(dim) != column
    if _all_rows(arr, lambda b: not b[:, others].any()):
        return [f"{what} are non-zero in column {column} only (of {dim}): they are effectively "
                "1-dimensional, so most similarities tie and metrics say little"]
    return []
