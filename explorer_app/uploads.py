"""Turn uploaded files into engine inputs: a zip of the dataset layout, or loose files.

Uploads are written into a caller-given folder (the app uses one temporary folder per browser
session) and then read by the engine's own loaders, so every problem surfaces as the engine's
:class:`DataError`. Nothing is unpickled (the engine reads ``.npy`` with ``allow_pickle=False``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from nudge_core.data import Dataset, ExtraQueries, load_dataset, load_query_set
from nudge_core.errors import DataError

#: Name of the embedding set that loose uploaded arrays are filed under.
UPLOAD_MODEL = "uploaded"

LOOSE_HELP = ("corpus embeddings (a .npy whose name contains 'corpus'), query embeddings (a .npy "
              "whose name contains 'quer'), corpus_ids.txt, query_ids.txt, one or more qrels .tsv "
              "files, and optionally corpus.jsonl[.gz] / queries.jsonl texts")


def content_hash(items: Iterable[tuple[str, bytes]]) -> str:
    """sha256 over (name, bytes) pairs, order-independent in the names."""
    h = hashlib.sha256()
    for name, data in sorted(items, key=lambda x: x[0]):
        h.update(name.encode("utf-8") + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def folder_hash(folder: str | Path, full_below: int = 256 * 2**20) -> str:
    """A content key for a folder on the server: sha256 of every file's bytes (files larger than
    ``full_below`` contribute their size and modification time instead)."""
    folder = Path(folder)
    h = hashlib.sha256(str(folder.resolve()).encode("utf-8"))
    if folder.is_file():
        files = [folder]
    else:
        files = sorted(p for p in folder.rglob("*") if p.is_file())
    for p in files:
        st = p.stat()
        h.update(str(p.relative_to(folder) if p != folder else p.name).encode("utf-8"))
        if st.st_size <= full_below:
            h.update(hashlib.sha256(p.read_bytes()).digest())
        else:
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _safe_name(name: str) -> str:
    base = Path(name.replace("\\", "/")).name
    if not base or base in (".", "..") or not re.fullmatch(r"[\w.\- ]+", base):
        raise DataError("file names may hold letters, digits, spaces, '.', '-' and '_' only",
                        repr(name))
    return base


#: Loose embedding-set files by extension: (the corpus file, the queries file).
_EMBEDDING_FILES = {".npy": ("corpus.npy", "queries.npy"), ".txt": ("corpus_ids.txt", "query_ids.txt")}


def _classify(name: str) -> str | None:
    """Where a loose file goes in the dataset layout (relative path), or None if unknown."""
    low = name.lower()
    for ext, (corpus_file, queries_file) in _EMBEDDING_FILES.items():
        if low.endswith(ext):
            if "corpus" in low or "record" in low or "doc" in low:
                return f"emb/{UPLOAD_MODEL}/{corpus_file}"
            if "quer" in low:
                return f"emb/{UPLOAD_MODEL}/{queries_file}"
            return None
    if low.endswith(".tsv"):
        return f"qrels/{Path(name).stem}.tsv"
    if low in ("corpus.jsonl", "corpus.jsonl.gz", "queries.jsonl"):
        return low
    return None


def write_loose(files: list[tuple[str, bytes]], folder: str | Path) -> Path:
    """File loose uploads into the dataset layout under ``folder``; returns the dataset folder.

    Raises DataError naming any file it cannot place and any required file that is missing."""
    root = Path(folder)
    placed: dict[str, str] = {}
    for name, data in files:
        base = _safe_name(name)
        target = _classify(base)
        if target is None:
            raise DataError(f"cannot tell what this file is; expected {LOOSE_HELP}", base)
        if target in placed:
            raise DataError(f"both {placed[target]!r} and {base!r} look like {target}; upload one",
                            base)
        placed[target] = base
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def load_uploaded_dataset(files: list[tuple[str, bytes]], folder: str | Path,
                          max_bytes: int | None = None) -> Dataset:
    """A dataset from uploads: one ``.zip`` of the layout, or loose files (see :data:`LOOSE_HELP`).

    ``folder`` must be empty and private to the uploader."""
    if not files:
        raise DataError("no file uploaded", "upload")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    zips = [f for f in files if f[0].lower().endswith(".zip")]
    if zips:
        if len(files) > 1:
            raise DataError("upload either one .zip of the dataset folder or loose files, not both",
                            "upload")
        name, data = zips[0]
        archive = folder / _safe_name(name)
        archive.write_bytes(data)
        ds = load_dataset(archive, max_bytes=max_bytes, extract_dir=folder / "extracted")
        ds.name = Path(name).stem
        return ds
    root = write_loose(files, folder / "dataset")
    ds = load_dataset(root, max_bytes=max_bytes)
    ds.name = "uploaded files"
    return ds


def load_uploaded_queries(files: list[tuple[str, bytes]], folder: str | Path, dataset: Dataset,
                          max_bytes: int | None = None) -> ExtraQueries:
    """An OOD query set from uploads: a ``.zip`` of a query-set folder, or loose files
    (query embeddings ``.npy``, ``query_ids.txt``, qrels ``.tsv``, optional ``queries.jsonl``)
    filed under the dataset's embedding-set name."""
    if not files:
        raise DataError("no file uploaded", "OOD upload")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if len(files) == 1 and files[0][0].lower().endswith(".zip"):
        archive = folder / _safe_name(files[0][0])
        archive.write_bytes(files[0][1])
        return load_query_set(archive, dataset, max_bytes=max_bytes, extract_dir=folder / "extracted")
    root = folder / "queries"
    for name, data in files:
        base = _safe_name(name)
        target = _classify(base)
        if target is None or "corpus" in target:
            raise DataError("cannot tell what this file is; expected query embeddings (.npy), "
                            "query_ids.txt, qrels .tsv and optionally queries.jsonl", base)
        target = target.replace(f"emb/{UPLOAD_MODEL}/", f"emb/{dataset.model}/")
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return load_query_set(root, dataset, max_bytes=max_bytes)


def tidy_message(message: str, folder: str | Path | None) -> str:
    """An engine message with the private temporary folder's path cut to ``upload/...``."""
    if folder is None:
        return message
    text = str(message)
    for prefix in (str(Path(folder).resolve()), str(folder)):
        text = text.replace(prefix + "/", "upload/").replace(prefix, "upload")
    return text
