"""Turn uploaded files into engine inputs: a zip of the dataset layout, or loose files.

Uploads are written into a caller-given folder (the app uses one private folder per browser
session, see :mod:`folders`), read by the engine's own loaders, and copied into memory; the
extracted or laid-out files are deleted right after. Every problem surfaces as the engine's
:class:`DataError`, and every message and conversion note names files as the user uploaded them
(``corpus.npy``, ``mine.zip/data/emb/e5/corpus.npy``), never by their path on the server. Nothing is
unpickled (the engine reads ``.npy`` with ``allow_pickle=False``).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nudge_core.data import Dataset, ExtraQueries, load_dataset, load_query_set
from nudge_core.errors import DataError
from nudge_core.files import dataset_root, parse_json, safe_extract_zip

#: The model name loose uploads are filed under until the user names theirs.
DEFAULT_MODEL = "my-model"
#: What a model name (the ``emb/<model>/`` folder the Export page's command reads) may be.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: A zip upload may expand to this many times the upload limit ...
ZIP_EXPANSION = 4
#: ... in at most this many members (a dataset folder holds a dozen files per embedding set).
ZIP_MEMBERS = 1000

LOOSE_HELP = ("corpus embeddings (a .npy whose name contains 'corpus'), query embeddings (a .npy "
              "whose name contains 'quer'), corpus_ids.txt, query_ids.txt, one or more qrels .tsv "
              "files, and optionally corpus.jsonl[.gz] / queries.jsonl texts")


@dataclass(frozen=True)
class UploadLimits:
    """What one upload may expand to: ``file_bytes`` for any one file once unpacked (the upload
    limit itself), ``zip_bytes`` and ``zip_members`` for everything inside one zip."""

    file_bytes: int
    zip_bytes: int
    zip_members: int

    @classmethod
    def from_upload_mb(cls, upload_mb: int) -> "UploadLimits":
        """The limits the app's upload limit (``server.maxUploadSize``, MB) implies."""
        size = int(upload_mb) * 2**20
        return cls(size, ZIP_EXPANSION * size, ZIP_MEMBERS)

    def describe(self) -> str:
        return (f"a .zip may unpack to at most {self.zip_bytes / 2**20:,.0f} MB in at most "
                f"{self.zip_members:,} files, and no file may exceed "
                f"{self.file_bytes / 2**20:,.0f} MB once unpacked (.gz included)")


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
                        repr(name[:80]))
    return base


def read_split_file(name: str, data: bytes) -> object:
    """An uploaded split file's JSON value (DataError naming the file if it is not UTF-8 JSON);
    the engine checks what it holds when it makes the split."""
    source = Path(name.replace("\\", "/")).name[:80] or "split file"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"is not UTF-8 text (byte {exc.start}); expected a JSON split file",
                        source) from None
    return parse_json(text, source)


def check_model_name(name: str) -> str:
    """``name`` (stripped) if it can name an ``emb/<model>/`` folder, else DataError."""
    name = (name or "").strip()
    if not MODEL_NAME.fullmatch(name) or name.strip(".") == "":
        raise DataError("expected 1-64 letters, digits, '.', '-' or '_', starting with a letter or "
                        f"digit (the emb/<model>/ folder your files live in); got {name[:80]!r}",
                        "model name")
    return name


def guess_model_name(names: Iterable[str]) -> str:
    """A model name from loose file names (``e5-small_corpus.npy`` -> ``e5-small``), else
    :data:`DEFAULT_MODEL`."""
    for name in names:
        low = name.lower()
        if low.endswith(".npy") and "corpus" in low:
            words = [w for w in re.split(r"[_.\s]+", Path(name).stem)
                     if w and w.lower() not in ("corpus", "embeddings", "emb", "records")]
            guess = "-".join(words).strip("-")
            if MODEL_NAME.fullmatch(guess):
                return guess
    return DEFAULT_MODEL


class _Names:
    """Private paths -> what the user uploaded, applied to every message and note."""

    def __init__(self, folder: Path) -> None:
        self.pairs: list[tuple[str, str]] = []
        self.add(folder, "upload")

    def add(self, private: Path, public: str) -> None:
        for form in dict.fromkeys([str(private), str(private.resolve())]):
            self.pairs.append((form, public))
        self.pairs.sort(key=lambda p: -len(p[0]))

    def __call__(self, text: str) -> str:
        for private, public in self.pairs:
            text = text.replace(private, public)
        return text


#: Loose embedding-set files by extension: (the corpus file, the queries file).
_EMBEDDING_FILES = {".npy": ("corpus.npy", "queries.npy"), ".txt": ("corpus_ids.txt", "query_ids.txt")}


def _classify(name: str, model: str) -> str | None:
    """Where a loose file goes in the dataset layout (relative path), or None if unknown."""
    low = name.lower()
    for ext, (corpus_file, queries_file) in _EMBEDDING_FILES.items():
        if low.endswith(ext):
            if "corpus" in low or "record" in low or "doc" in low:
                return f"emb/{model}/{corpus_file}"
            if "quer" in low:
                return f"emb/{model}/{queries_file}"
            return None
    if low.endswith(".tsv"):
        return f"qrels/{Path(name).stem}.tsv"
    if low in ("corpus.jsonl", "corpus.jsonl.gz", "queries.jsonl"):
        return low
    return None


def write_loose(files: list[tuple[str, bytes]], folder: str | Path, model: str = DEFAULT_MODEL,
                names: _Names | None = None, queries_only: bool = False) -> Path:
    """File loose uploads into the dataset layout under ``folder`` (embeddings under
    ``emb/<model>/``); returns the folder. ``names`` learns each file's uploaded name.

    Raises DataError naming any file it cannot place or that two files would both be."""
    root = Path(folder)
    placed: dict[str, str] = {}
    for name, data in files:
        base = _safe_name(name)
        target = _classify(base, model)
        if target is None or (queries_only and "corpus" in target):
            what = ("query embeddings (.npy), query_ids.txt, qrels .tsv and optionally "
                    "queries.jsonl" if queries_only else LOOSE_HELP)
            raise DataError(f"cannot tell what this file is; expected {what}", base)
        if target in placed:
            raise DataError(f"both {placed[target]!r} and {base!r} look like {target}; upload one",
                            base)
        placed[target] = base
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if names is not None:
            names.add(path, base)
    if names is not None:
        names.add(root, "the uploaded files")
    return root


def _extract(archive: Path, limits: UploadLimits | None, names: _Names) -> Path:
    """``archive`` checked and extracted beside it (within ``limits``); its dataset root."""
    dest = archive.parent / "extracted"
    names.add(archive, archive.name)
    names.add(dest, archive.name)
    caps = {} if limits is None else {"max_bytes": limits.zip_bytes,
                                      "max_members": limits.zip_members}
    safe_extract_zip(archive, dest, **caps)
    return dataset_root(dest)


def _write_archive(name: str, data: bytes, folder: Path) -> Path:
    archive = folder / _safe_name(name)
    archive.write_bytes(data)
    return archive


def _loaded(load, names: _Names, folder: Path, keep: Path | None = None):
    """``load()`` with its messages, notes and arrays made public; everything under ``folder``
    but ``keep`` deleted afterwards (arrays are copied into memory first)."""
    try:
        out = load()
    except DataError as exc:
        raise DataError(names(str(exc))) from None
    finally:
        for path in folder.iterdir() if folder.is_dir() else ():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path != keep:
                path.unlink(missing_ok=True)
    out.notes[:] = [names(n) for n in out.notes]
    return out


def load_uploaded_dataset(files: list[tuple[str, bytes]], folder: str | Path, *,
                          model: str | None = None, limits: UploadLimits | None = None) -> Dataset:
    """A dataset from uploads: one ``.zip`` of the layout (``model`` picks its embedding set when
    it has several), or loose files (see :data:`LOOSE_HELP`) filed under ``model``.

    ``folder`` must be private to the uploader; a zip archive stays in it (to load another of its
    embedding sets later with :func:`load_uploaded_zip`), everything else is deleted."""
    if not files:
        raise DataError("no file uploaded", "upload")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    zips = [f for f in files if f[0].lower().endswith(".zip")]
    if zips:
        if len(files) > 1:
            raise DataError("upload either one .zip of the dataset folder or loose files, not both",
                            "upload")
        return load_uploaded_zip(_write_archive(*zips[0], folder), model=model, limits=limits)
    model = check_model_name(model or DEFAULT_MODEL)
    names = _Names(folder)
    cap = limits.file_bytes if limits else None

    def load() -> Dataset:
        root = write_loose(files, folder / "dataset", model, names)
        return _in_memory(load_dataset(root, max_bytes=cap))
    ds = _loaded(load, names, folder)
    ds.name, ds.source = "uploaded files", "the uploaded files"
    return ds


def load_uploaded_zip(archive: Path, *, model: str | None = None,
                      limits: UploadLimits | None = None) -> Dataset:
    """The dataset in an uploaded zip already written to ``archive`` (which stays)."""
    names = _Names(archive.parent)

    def load() -> Dataset:
        return _in_memory(load_dataset(_extract(archive, limits, names), model,
                                       max_bytes=limits.file_bytes if limits else None))
    ds = _loaded(load, names, archive.parent, keep=archive)
    ds.name, ds.source = archive.stem, archive.name
    return ds


def _in_memory(ds: Dataset) -> Dataset:
    ds.corpus_emb = np.array(ds.corpus_emb)  # detach from the files, which are deleted next
    ds.query_emb = np.array(ds.query_emb)
    return ds


def load_uploaded_queries(files: list[tuple[str, bytes]], folder: str | Path, dataset: Dataset, *,
                          limits: UploadLimits | None = None) -> ExtraQueries:
    """An OOD query set from uploads: a ``.zip`` of a query-set folder, or loose files
    (query embeddings ``.npy``, ``query_ids.txt``, qrels ``.tsv``, optional ``queries.jsonl``)
    filed under the dataset's embedding-set name. Nothing stays in ``folder``."""
    if not files:
        raise DataError("no file uploaded", "OOD upload")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = _Names(folder)
    cap = limits.file_bytes if limits else None

    def load() -> ExtraQueries:
        if len(files) == 1 and files[0][0].lower().endswith(".zip"):
            root = _extract(_write_archive(*files[0], folder), limits, names)
        else:
            root = write_loose(files, folder / "queries", dataset.model, names, queries_only=True)
        return load_query_set(root, dataset, max_bytes=cap)
    return _loaded(load, names, folder)
