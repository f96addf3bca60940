"""Record and query id lists held in one numpy array, not one Python object per id.

A ``list[str]`` of 10M ids plus a ``{id: row}`` dict costs about 150 bytes per id (a 57-byte
``str`` object, an 8-byte list slot, a dict entry and its hash-table share), 1.5 GB at 10M records:
more than the shard the out-of-core path holds. :class:`IdList` keeps the ids in one array and
:class:`IdLookup` finds a row by binary search over one argsort, so a dataset costs:

* ``S<w>`` storage (UTF-8, fixed width ``w`` = the longest id in bytes), chosen when it is no
  larger than the alternative: **w bytes per id** (8 for ``"d1234567"``, at most 9 for SciFact's
  numeric ids);
* ``numpy.dtypes.StringDType`` storage otherwise: **16 bytes per id**, ids of more than 15 UTF-8
  bytes adding their length (+8) in an arena, so one 200-character id costs ~200 bytes instead of
  widening every row to 200 (``S200``); an id holding a NUL is refused (ids are text; numpy 2.4
  sorts StringDType wrongly around NULs, which would break the lookup);
* the lookup: **8 bytes per id** (the int64 argsort; numpy's ``searchsorted(..., sorter=)`` copies
  any other index dtype on every call).

Measured (numpy 2.4): reading ``"d0000000".."d0999999"`` with :func:`~nudge_core.files.read_id_list`
keeps 16 bytes per id (8 + 8) and peaks at ~19 (tracemalloc; ``tests/test_ids.py`` bounds it at
40); at 10M ids peak RSS is ~160 MiB above the interpreter's, against ~1.3 GiB for the former list +
dicts. Row order is the file's order; the argsort is stable, so equal ids (only possible before the
duplicate check) look up to the first.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property

import numpy as np

#: The variable-width storage (one shared dtype instance).
STRING_DTYPE = np.dtypes.StringDType()
#: StringDType keeps a string of up to this many UTF-8 bytes inside its 16-byte slot.
INLINE_BYTES = 15
#: Ids converted, decoded or compared per numpy call (bounds the temporaries).
CHUNK = 65536


class IdList(Sequence):
    """An immutable ``Sequence[str]`` of ids, in row order, backed by one numpy array.

    ``ids[i]`` is a ``str`` (negative ``i`` too), ``ids[a:b]`` a ``list[str]``; iteration, ``in``,
    ``"\\n".join(ids)`` and ``==`` with a list of the same strings behave as for a list. See the
    module docstring for the bytes per id and why. Build one with ``IdList(iterable_of_str)``,
    :meth:`from_chunks` (lists of ids, streamed) or :meth:`numbered`.
    """

    __hash__ = None  # equal to a list, which is unhashable

    def __init__(self, ids: Iterable[str] = ()) -> None:
        if isinstance(ids, IdList):
            self._arr, self._extra = ids._arr, ids._extra
            return
        items = ids if isinstance(ids, list) else list(ids)
        built = IdList.from_chunks(items[i:i + CHUNK] for i in range(0, len(items), CHUNK))
        self._arr, self._extra = built._arr, built._extra

    @classmethod
    def _wrap(cls, arr: np.ndarray, extra: int = 0) -> "IdList":
        obj = cls.__new__(cls)
        arr.flags.writeable = False
        obj._arr, obj._extra = arr, extra
        return obj

    @classmethod
    def numbered(cls, n: int) -> "IdList":
        """``"0".."n-1"``, made by numpy without a Python string per id."""
        return cls._wrap(np.arange(n).astype("S") if n else np.zeros(0, "S1"))

    @classmethod
    def from_chunks(cls, chunks: Iterable[list[str]]) -> "IdList":
        """The ids of ``chunks`` (lists of ``str``), in order; only one chunk is ever held as
        Python strings. Raises ValueError naming the row of an id holding a NUL (ids are text), or
        a lone surrogate (``"\\ud800"``), which UTF-8, hence either storage, cannot hold."""
        parts: list[np.ndarray] = []
        n = width = long_bytes = 0
        variable = False  # S<w> unless StringDType is smaller (decided at the end)
        for strs in chunks:
            if not strs:
                continue
            try:
                encoded = [s.encode("utf-8") for s in strs]
            except UnicodeEncodeError:
                bad = next(i for i, s in enumerate(strs) if not _encodable(s))
                raise ValueError(f"the id on row {n + bad} holds a lone surrogate (\\ud800-\\udfff), "
                                 "which is not a character; expected valid Unicode") from None
            lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
            width = max(width, int(lengths.max()))
            long_bytes += int((lengths[lengths > INLINE_BYTES] + 8).sum())
            if b"\x00" in b"".join(encoded):  # numpy 2.4 sorts StringDType wrongly around NULs
                bad = next(i for i, e in enumerate(encoded) if b"\x00" in e)
                raise ValueError(f"the id on row {n + bad} holds a NUL character; ids are text")
            parts.append(np.array(encoded, "S"))
            n += len(strs)
            del encoded
        if not n:
            return cls._wrap(np.zeros(0, "S1"))
        if n * width > 16 * n + long_bytes:
            variable = True
            parts = [_to_strings(p) for p in parts]
        if variable:
            return cls._wrap(np.concatenate(parts) if len(parts) > 1 else parts[0], long_bytes)
        arr = np.empty(n, f"S{width}")
        at = 0
        while parts:
            part = parts.pop(0)
            arr[at:at + len(part)] = part
            at += len(part)
        return cls._wrap(arr)

    # -- the Sequence -------------------------------------------------------------------------------
    @property
    def array(self) -> np.ndarray:
        """The backing (n,) array, read-only: ``S<w>`` UTF-8 bytes or StringDType."""
        return self._arr

    @property
    def fixed_width(self) -> bool:
        """True when the ids are stored as ``S<w>`` UTF-8 bytes."""
        return self._arr.dtype.kind == "S"

    @property
    def nbytes(self) -> int:
        """Bytes the ids occupy (the array, plus StringDType's arena for long ids); the lookup,
        once built, adds :attr:`IdLookup.nbytes`."""
        return int(self._arr.nbytes) + self._extra

    def __len__(self) -> int:
        return int(self._arr.shape[0])

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._strings(self._arr[index])
        i = index.__index__()
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"id index {i} out of range for {n:,} ids")
        item = self._arr[i]
        return item.decode("utf-8") if self.fixed_width else str(item)

    def _strings(self, block: np.ndarray) -> list[str]:
        if self.fixed_width:
            return [b.decode("utf-8") for b in block.tolist()]
        return block.tolist()

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), CHUNK):
            yield from self._strings(self._arr[start:start + CHUNK])

    def __contains__(self, value: object) -> bool:
        return value in self.lookup

    def index(self, value, start: int = 0, stop: int | None = None) -> int:
        row = self.lookup.get(value, -1)
        if row < 0 or row < start or (stop is not None and row >= stop):
            return super().index(value, start, len(self) if stop is None else stop)
        return row

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IdList):
            return len(self) == len(other) and bool(np.all(self._arr == other._arr)) \
                if self._arr.dtype == other._arr.dtype else self == list(other)
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        if len(self) != len(other):
            return False
        return all(self[a:a + CHUNK] == list(other[a:a + CHUNK]) for a in range(0, len(self), CHUNK))

    def __repr__(self) -> str:
        head = ", ".join(map(repr, self[:3]))
        return f"IdList({len(self):,} ids: {head}{', …' if len(self) > 3 else ''})"

    def __reduce__(self):
        return IdList._wrap, (np.array(self._arr), self._extra)

    # -- checks and lookups ------------------------------------------------------------------------
    @cached_property
    def lookup(self) -> "IdLookup":
        """``{id: row}`` as a :class:`IdLookup` (built once, on first use)."""
        return IdLookup(self)

    def first_blank(self) -> int | None:
        """The first row whose id is the empty string, or None."""
        hits = np.flatnonzero(self._arr == (b"" if self.fixed_width else ""))
        return int(hits[0]) if len(hits) else None

    def first_duplicate(self) -> tuple[int, int] | None:
        """``(first, again)``: the smallest row ``again`` whose id already occurs on an earlier
        row, and the first row ``first`` holding it (what a line-by-line scan with a ``seen``
        dict reports), or None. Neighbours in the (stable) sorted order are compared
        :data:`CHUNK` at a time, so no sorted copy of the ids is made."""
        order, arr = self.lookup.order, self._arr
        again = len(self)
        for a in range(1, len(self), CHUNK):
            rows = order[a:a + CHUNK]
            same = arr[rows] == arr[order[a - 1:a - 1 + len(rows)]]
            if same.any():
                again = min(again, int(rows[same].min()))
        if again == len(self):
            return None
        return self.lookup[self[again]], again

    def json_chunks(self) -> Iterator[bytes]:
        """``json.dumps(list(self), ensure_ascii=False).encode()`` in pieces (for hashing
        without a list of all ids)."""
        yield b"["
        for start in range(0, len(self), CHUNK):
            body = json.dumps(self[start:start + CHUNK], ensure_ascii=False)[1:-1]
            yield ((", " if start else "") + body).encode("utf-8")
        yield b"]"


class IdLookup(Mapping):
    """``{id: row}`` for an :class:`IdList` without a dict: a binary search over the ids' stable
    argsort (int64, 8 bytes per id). ``lookup[id]`` -> row, ``KeyError`` for an unknown id;
    ``get``, ``in``, ``len`` and iteration (ids in row order) as for a dict; :meth:`rows` looks
    up many ids in one numpy call."""

    def __init__(self, ids: IdList) -> None:
        # the array, not the IdList: no reference cycle, so a dropped dataset frees its ids at once
        self._arr, self._fixed = ids.array, ids.fixed_width
        self.order = np.argsort(self._arr, kind="stable")
        self.order.flags.writeable = False

    @property
    def nbytes(self) -> int:
        return int(self.order.nbytes)

    def __len__(self) -> int:
        return len(self._arr)

    def __iter__(self) -> Iterator[str]:
        return iter(IdList._wrap(self._arr))

    def _key(self, key: object):
        """``key`` as stored, or None when it cannot be an id here."""
        if not isinstance(key, str):
            return None
        if not self._fixed:
            return key if _encodable(key) and "\x00" not in key else None
        try:
            raw = key.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return raw if len(raw) <= self._arr.dtype.itemsize and b"\x00" not in raw else None

    def _find(self, key: object) -> int:
        k = self._key(key)
        if k is None or not len(self._arr):
            return -1
        if self._fixed:  # numpy's binary search: ~2 µs at 10M ids
            at = int(np.searchsorted(self._arr, np.array(k, self._arr.dtype), sorter=self.order))
        else:  # StringDType's searchsorted copies the array per call (see rows): bisect here
            at = bisect.bisect_left(_Sorted(self._arr, self.order), k)
        if at < len(self.order) and self._arr[self.order[at]] == k:
            return int(self.order[at])
        return -1

    def __getitem__(self, key: object) -> int:
        row = self._find(key)
        if row < 0:
            raise KeyError(key)
        return row

    def __contains__(self, key: object) -> bool:
        return self._find(key) >= 0

    def rows(self, keys: Sequence[str]) -> np.ndarray:
        """(len(keys),) int64 rows of ``keys``, -1 for a key that is not an id. ``S`` storage:
        one numpy ``searchsorted``; StringDType: a bisection per key (numpy 2.4's
        ``searchsorted`` on StringDType copies the array per call and can answer wrongly once
        ids live in its arena, e.g. ``"BaseException.add_note"``)."""
        out = np.full(len(keys), -1, np.int64)
        if not len(keys) or not len(self._arr):
            return out
        if not self._fixed:
            return np.fromiter(map(self._find, keys), np.int64, len(keys))
        stored = [self._key(k) for k in keys]
        ok = np.fromiter((s is not None for s in stored), bool, len(stored))
        if not ok.any():
            return out
        wanted = np.array([s for s in stored if s is not None], self._arr.dtype)
        at = np.minimum(np.searchsorted(self._arr, wanted, sorter=self.order), len(self.order) - 1)
        found = self.order[at]
        out[np.flatnonzero(ok)] = np.where(self._arr[found] == wanted, found, -1)
        return out

    def missing(self, keys: Iterable[str]) -> set[str]:
        """The ``keys`` that are not ids here (one :meth:`rows` call)."""
        keys = list(keys)
        return {keys[i] for i in np.flatnonzero(self.rows(keys) < 0)}


class _Sorted:
    """The ids in sorted order, for :func:`bisect.bisect_left` (no sorted copy is made)."""

    def __init__(self, arr: np.ndarray, order: np.ndarray) -> None:
        self.arr, self.order = arr, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int):
        return self.arr[self.order[i]]


def as_id_list(ids: Iterable[str]) -> IdList:
    """``ids`` as an :class:`IdList` (itself when it already is one)."""
    return ids if isinstance(ids, IdList) else IdList(ids)


def _encodable(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _to_strings(part: np.ndarray) -> np.ndarray:
    """An ``S`` block (UTF-8, no NULs) as StringDType."""
    if part.dtype.kind != "S":
        return part
    return np.array([b.decode("utf-8") for b in part.tolist()], dtype=STRING_DTYPE)
