"""Sharded corpora: the record embeddings as a folder of row-shards, opened memory-mapped.

A dataset folder may hold its corpus as ``emb/<model>/corpus/`` instead of ``corpus.npy``::

    emb/<model>/corpus/shard-00000.npy   (rows_0, dim) float32   rows 0 .. rows_0-1
    emb/<model>/corpus/shard-00001.npy   (rows_1, dim) float32   the next rows, and so on
    emb/<model>/corpus/manifest.json     optional: {"shards": [["shard-00000.npy", rows_0], ...]}
    emb/<model>/corpus_ids.txt           one id per row of all shards together, in row order

Without a manifest the shards are the folder's ``*.npy`` files in name order. Each shard is
checked when the dataset is opened (the ``.npy`` header, float32, 2-D, one dimension for all,
the manifest's row counts, ids count = rows); its values (NaN/inf, all-zero rows) are checked as
the shard is first read, before anything is written (:mod:`nudge_core.outofcore`). Nothing reads
a whole shard into memory except :meth:`ShardedCorpus.__array__` (small corpora, tests).

``nudge-explorer shard DATASET --rows N --out NEW_DIR`` (:func:`shard_dataset`) writes such a
folder from any dataset.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from .errors import DataError
from .files import parse_json
from .matrices import _npy_header

#: Folder of row-shards inside ``emb/<model>/``, and its optional manifest.
SHARD_DIR = "corpus"
MANIFEST = "manifest.json"
#: A one-file float32 corpus of this many MiB or more runs on the out-of-core path by default
#: (its file becomes one shard): the in-memory path holds the mapped file, a normalised copy and
#: NUDGE's output copy (300k x 384: 2.0 GB peak for a 440 MB corpus, ``benchmarks/bench_outofcore.py``).
OUT_OF_CORE_MIB = 256


def is_out_of_core(corpus) -> bool:
    """Whether ``corpus`` is searched shard by shard (a :class:`ShardedCorpus`)."""
    return hasattr(corpus, "unit_view")


def corpus_mib(corpus) -> float:
    """The corpus matrix's size in MiB as float32 ((n, d) * 4 bytes), however it is stored."""
    n, d = corpus.shape
    return n * d * 4 / 2**20


def route_out_of_core(ds, limit_mib: float | None = None) -> str | None:
    """Open ``ds``'s memory-mapped float32 ``corpus.npy`` of ``limit_mib`` MiB or more as a
    one-shard :class:`ShardedCorpus` (in place; results are identical, ``tests/test_outofcore.py``)
    and return a note saying so; an in-memory corpus over the limit (converted from another dtype,
    or read from a zip) stays, with a note saying so and how to shard it; None when the corpus
    stays silently (smaller, or already sharded). ``limit_mib``: default :data:`OUT_OF_CORE_MIB`."""
    limit_mib = OUT_OF_CORE_MIB if limit_mib is None else limit_mib
    corpus = ds.corpus_emb
    if type(corpus) is np.ndarray and corpus.nbytes >= limit_mib * 2**20:
        return (f"the corpus is {corpus.nbytes / 2**20:,.0f} MiB as float32, over the in-memory "
                f"limit of {limit_mib:,.0f} MiB, but it is held in memory: its file is not a float32 "
                ".npy that can be read in place (another dtype, or inside a .zip); `nudge-explorer "
                "shard` writes float32 shards, which are searched out of core")
    if (not isinstance(corpus, np.memmap) or corpus.dtype != np.float32
            or corpus.nbytes < limit_mib * 2**20 or not corpus.filename
            or not Path(corpus.filename).is_file()):
        return None
    ds.corpus_emb = ShardedCorpus([Path(corpus.filename)], [corpus.shape[0]], corpus.shape[1],
                                  source=corpus.filename)
    return (f"the corpus is {corpus.nbytes / 2**20:,.0f} MiB, over the in-memory limit of "
            f"{limit_mib:,.0f} MiB: it is searched out of core, block by block (same results)")


def _open_shard(path: Path) -> np.memmap:
    """The shard at ``path`` memory-mapped, its header checked (errors name the shard)."""
    if not path.is_file():
        raise DataError("shard file is missing", str(path))
    header_len = _npy_header(path)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False, max_header_size=max(header_len + 1, 10_000))
    except (ValueError, OSError, EOFError, OverflowError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "mmap length is greater" in msg:
            msg = "the file holds less data than its header describes; truncated or a wrong header"
        raise DataError(f"not a valid .npy shard ({msg})", str(path)) from None
    if arr.dtype != np.float32 or arr.ndim != 2:
        raise DataError(f"has dtype {arr.dtype} and shape {arr.shape}; every shard must be a 2-D "
                        "(rows, dim) float32 matrix (shards are memory-mapped, never converted)",
                        str(path))
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"has shape {arr.shape}; a shard needs at least one row and one column",
                        str(path))
    extra = path.stat().st_size - arr.offset - arr.nbytes
    if extra > 0:
        raise DataError(f"holds {extra} bytes more than its header describes (shape {arr.shape}); "
                        "the header or the data is wrong", str(path))
    return arr


def read_rows(path: Path | str, rows: np.ndarray) -> np.ndarray:
    """(len(rows), dim) float32 rows ``rows`` (indices into the shard) read with ``pread``.

    Not through the memory map: numpy's fancy indexing of a mapped file faulted in the whole file
    (a 1,024-row sample of a 440 MB shard put 420 MB in the resident set), pread reads the rows.
    """
    mm = np.load(path, mmap_mode="r", allow_pickle=False)
    n, dim = mm.shape
    offset, row_bytes = mm.offset, dim * 4
    del mm
    rows = np.asarray(rows, np.int64).ravel()
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise IndexError(f"row out of range for a shard of {n} rows")
    out = np.empty((len(rows), dim), np.float32)
    view = out.view(np.uint8).reshape(len(rows), row_bytes)
    fd = os.open(path, os.O_RDONLY)
    try:
        for j, r in enumerate(rows.tolist()):
            data = os.pread(fd, row_bytes, offset + r * row_bytes)
            if len(data) != row_bytes:
                raise DataError(f"row {r} could not be read (the file is shorter than its header "
                                "says)", str(path))
            view[j] = np.frombuffer(data, np.uint8)
    finally:
        os.close(fd)
    return out


class ShardedCorpus:
    """(n, dim) float32 records stored as row-shards; array-like enough for the engine.

    ``paths[i]`` holds rows ``offsets[i]:offsets[i+1]``. ``shape``, ``ndim``, ``dtype``, ``len``
    and row indexing (``corpus[a:b]``, ``corpus[int array]``) read only the rows asked for, shard
    by shard. :meth:`unit_view` is the unit-norm, searchable view NUDGE fits on
    (:class:`nudge_core.outofcore.ShardedIndex`).
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, paths: list[Path], rows: list[int], dim: int, source: str = "") -> None:
        self.paths = [Path(p) for p in paths]
        self.rows = [int(r) for r in rows]
        self.offsets = np.concatenate([[0], np.cumsum(self.rows)]).astype(np.int64)
        self.dim = int(dim)
        self.source = source

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.offsets[-1]), self.dim

    @property
    def n_shards(self) -> int:
        return len(self.paths)

    def __len__(self) -> int:
        return self.shape[0]

    def ranges(self, start: int, stop: int):
        """Where rows [start, stop) lie: ``(shard i, first row in it, end row in it, position of
        the first in the output)`` for each shard they touch, in order."""
        for i in range(self.n_shards):
            off = int(self.offsets[i])
            a, b = max(start, off), min(stop, int(self.offsets[i + 1]))
            if a < b:
                yield i, a - off, b - off, a - start

    def shard(self, i: int) -> np.memmap:
        """Shard ``i`` memory-mapped (re-opened each time, so its pages are released with it)."""
        return np.load(self.paths[i], mmap_mode="r", allow_pickle=False)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):
            raise TypeError("a sharded corpus is indexed by rows only")
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                return self[np.arange(start, stop, step)]
            out = np.empty((max(stop - start, 0), self.dim), np.float32)
            for i, lo, hi, at in self.ranges(start, stop):
                out[at:at + hi - lo] = self.shard(i)[lo:hi]
            return out
        rows = np.asarray(key)
        if rows.ndim == 0:
            return self[np.array([int(rows)])][0]
        rows = rows.astype(np.int64).ravel()
        rows = np.where(rows < 0, rows + len(self), rows)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row out of range for a corpus of {len(self)} records")
        out = np.empty((len(rows), self.dim), np.float32)
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        for i in np.unique(which):
            sel = which == i
            out[sel] = read_rows(self.paths[i], rows[sel] - self.offsets[i])
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The whole corpus in memory (small corpora only)."""
        out = self[0:len(self)]
        return out if dtype is None else out.astype(dtype)

    def unit_view(self, backend=None):
        """The unit-norm records as a searchable, writable-by-overlay view (nothing copied)."""
        from .outofcore import ShardedIndex

        return ShardedIndex(self, normalize=True, backend=backend)


def open_sharded(folder: Path) -> ShardedCorpus:
    """Open and check the shard folder ``folder`` (see the module docstring)."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if manifest.is_file():
        data = parse_json(manifest.read_text(encoding="utf-8"), str(manifest))
        entries = data.get("shards") if isinstance(data, dict) else None
        if not isinstance(entries, list) or not entries or not all(
                isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) and isinstance(e[1], int)
                and not isinstance(e[1], bool) and "/" not in e[0] and "\\" not in e[0]
                for e in entries):
            raise DataError('expected {"shards": [["shard-00000.npy", rows], ...]} (file names '
                            "inside this folder, row counts as integers)", str(manifest))
        names, expected = [e[0] for e in entries], [e[1] for e in entries]
    else:
        names = sorted(p.name for p in folder.glob("*.npy"))
        expected = [None] * len(names)
        if not names:
            raise DataError("holds no *.npy shard; expected shard-00000.npy, shard-00001.npy, ...",
                            str(folder))
    paths, rows, dim = [], [], None
    for name, want in zip(names, expected):
        arr = _open_shard(folder / name)
        if want is not None and arr.shape[0] != want:
            raise DataError(f"has {arr.shape[0]} rows but {MANIFEST} says {want}", str(folder / name))
        if dim is None:
            dim = arr.shape[1]
        elif arr.shape[1] != dim:
            raise DataError(f"has dimension {arr.shape[1]} but {folder / names[0]} has {dim}; every "
                            "shard must have the same dimension", str(folder / name))
        paths.append(folder / name)
        rows.append(arr.shape[0])
        del arr
    return ShardedCorpus(paths, rows, dim, source=str(folder))


def write_shards(corpus, folder: Path, rows: int, block_rows: int = 65536) -> ShardedCorpus:
    """Write ``corpus`` ((n, d) array-like) as shards of ``rows`` rows into ``folder`` (a new
    folder), block by block so memory stays at one block; writes the manifest last."""
    if rows < 1:
        raise ValueError(f"rows per shard must be >= 1, got {rows}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=False)
    n, dim = corpus.shape
    entries = []
    for j, start in enumerate(range(0, n, rows)):
        stop = min(start + rows, n)
        name = f"shard-{j:05d}.npy"
        out = np.lib.format.open_memmap(folder / name, mode="w+", dtype=np.float32,
                                        shape=(stop - start, dim))
        for a in range(start, stop, block_rows):
            b = min(a + block_rows, stop)
            out[a - start:b - start] = np.asarray(corpus[a:b], dtype=np.float32)
        out.flush()
        del out
        entries.append([name, stop - start])
    (folder / MANIFEST).write_text(json.dumps({"shards": entries}, indent=0), encoding="utf-8")
    return open_sharded(folder)


def shard_dataset(source: str | Path, rows: int, out: str | Path, model: str | None = None) -> Path:
    """Copy the dataset ``source`` to the new folder ``out`` with its corpus split into shards
    of ``rows`` rows (qrels, queries, ids and texts copied as they are). Returns the new
    ``emb/<model>`` folder. ``out`` must not exist (nothing is overwritten)."""
    from .data import load_dataset

    out = Path(out)
    if out.exists():
        raise DataError("already exists; give a new folder for the sharded dataset", str(out))
    if rows < 1:
        raise DataError(f"--rows must be an integer >= 1, got {rows}", "--rows")
    ds = load_dataset(source, model, load_texts=False)
    root = Path(ds.source)
    emb_src = root / "emb" / ds.model
    emb = out / "emb" / ds.model
    try:
        emb.mkdir(parents=True)
        write_shards(ds.corpus_emb, emb / SHARD_DIR, rows)
        for name in ("corpus_ids.txt", "query_ids.txt", "queries.npy"):
            shutil.copyfile(emb_src / name, emb / name)
        shutil.copytree(root / "qrels", out / "qrels")
        for name in ("corpus.jsonl", "corpus.jsonl.gz", "queries.jsonl"):
            if (root / name).is_file():
                shutil.copyfile(root / name, out / name)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return emb
