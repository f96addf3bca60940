"""Datasets: embeddings, ids, relevance judgements and optional texts, validated on the way in.

A dataset folder has the BEIR layout plus embeddings::

    corpus.jsonl[.gz]      optional texts  {"_id", "title", "text"}
    queries.jsonl          optional texts  {"_id", "text"}
    qrels/<split>.tsv      header "query-id<TAB>corpus-id<TAB>score"
    emb/<model>/corpus.npy (n_records, dim)  float32 (float16/float64 converted)
    emb/<model>/queries.npy (n_queries, dim)
    emb/<model>/corpus_ids.txt, query_ids.txt  one id per line, in row order
    emb/<model>/corpus/shard-*.npy  instead of corpus.npy: the corpus as row-shards, opened
                           memory-mapped and searched shard by shard (:mod:`nudge_core.shards`)

:func:`load_dataset` reads a folder or a zip of one; :func:`dataset_from_arrays` wraps arrays
from Python; :func:`load_query_set` reads a second query set (an OOD set) over the same corpus.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import DataError
from .files import (MAX_ZIP_BYTES, MAX_ZIP_MEMBERS, cr_only_hint, dataset_root, excerpt, read_id_list,
                    read_jsonl_texts, remove_tree, safe_extract_zip)
from .ids import IdList, IdLookup, as_id_list
from .matrices import check_matrix, degenerate_notes, load_matrix
from .qrels import check_grade, read_qrels
from .relevance import Relevance
from .shards import SHARD_DIR, open_sharded

#: Order in which qrels files are pooled (then any other file, alphabetically), as BEIR names them.
QRELS_ORDER = ("train", "dev", "validation", "val", "test")


@dataclass
class QuerySet:
    """Labelled queries resolved to corpus rows.

    ``emb`` is (n_queries, dim) float32 as the model gave them; ``answers[j]`` holds the corpus row
    indices judged relevant (grade > 0) for query j and ``grades[j]`` their grades, same order.
    """

    ids: list[str]
    emb: np.ndarray
    answers: list[np.ndarray]
    grades: list[np.ndarray]
    #: query id -> text, when the set came with texts (a query set loaded with its
    #: ``queries.jsonl``); model fine-tuning re-encodes queries it did not see from these
    texts: dict[str, str] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (query, relevant record) pair, query by query: (query positions, corpus rows),
        two (n_pairs,) int64 arrays."""
        counts = np.fromiter(map(len, self.answers), dtype=np.int64, count=len(self.answers))
        rows = (np.concatenate(self.answers).astype(np.int64, copy=False) if self.answers
                else np.zeros(0, np.int64))
        return np.repeat(np.arange(len(self.answers), dtype=np.int64), counts), rows

    @cached_property
    def relevance(self) -> Relevance:
        """The judgements encoded once for vectorised metric lookups (:mod:`relevance`)."""
        return Relevance.from_answers(self.answers, self.grades)

    def subset(self, positions: np.ndarray | list[int]) -> "QuerySet":
        positions = list(positions)
        return QuerySet([self.ids[i] for i in positions], self.emb[positions],
                        [self.answers[i] for i in positions], [self.grades[i] for i in positions])


@dataclass
class Dataset:
    """A validated retrieval dataset (see the module docstring for the layout).

    ``corpus_emb`` (n_records, dim) float32, possibly memory-mapped, rows as given (not normalised);
    ``query_emb`` (n_queries, dim) float32. ``qrels`` maps every query with at least one positive
    judgement to ``{corpus_id: grade}`` (all files pooled); ``qrels_files`` keeps each file's own
    judgements (``"train"``, ``"test"``, ...). ``labelled_ids`` lists the usable queries in pooled
    order: qrels files in :data:`QRELS_ORDER`, each in order of first appearance.
    ``notes`` records every conversion and exclusion made while loading. Ids are
    :class:`~nudge_core.ids.IdList` (a list given is converted; ~8-16 bytes per id, not ~150).
    """

    name: str
    model: str
    corpus_ids: IdList
    corpus_emb: np.ndarray
    query_ids: IdList
    query_emb: np.ndarray
    qrels: dict[str, dict[str, int]]
    qrels_files: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    corpus_text: dict[str, str] | None = None
    query_text: dict[str, str] | None = None
    notes: list[str] = field(default_factory=list)
    source: str = ""

    def __post_init__(self) -> None:
        self.corpus_ids = as_id_list(self.corpus_ids)
        self.query_ids = as_id_list(self.query_ids)

    record_row = property(lambda self: self.corpus_ids.lookup, doc="corpus id -> row (IdLookup)")
    query_row = property(lambda self: self.query_ids.lookup, doc="query id -> row (IdLookup)")

    @property
    def n_records(self) -> int:
        return int(self.corpus_emb.shape[0])

    @property
    def dim(self) -> int:
        return int(self.corpus_emb.shape[1])

    @property
    def labelled_ids(self) -> list[str]:
        return list(self.qrels)

    def queries(self, ids: list[str]) -> QuerySet:
        """The labelled queries ``ids`` (each must have a positive judgement) as a QuerySet."""
        unknown = [q for q in ids if q not in self.qrels]
        if unknown:
            raise DataError(f"{len(unknown)} query ids have no positive judgement or are unknown, "
                            f"e.g. {', '.join(excerpt(q) for q in unknown[:3])}", "split")
        rows = self.query_row.rows(list(ids))
        emb = np.asarray(self.query_emb[rows], dtype=np.float32) if len(ids) else \
            np.zeros((0, self.dim), np.float32)
        return _resolve(ids, emb, self.qrels, self.record_row)


def _resolve(ids: list[str], emb: np.ndarray, qrels: dict[str, dict[str, int]],
             record_row: IdLookup) -> QuerySet:
    """The positive judgements of ``ids`` as corpus rows (looked up in one numpy call)."""
    pos = [[(d, g) for d, g in qrels[q].items() if g > 0] for q in ids]
    records = [d for judged in pos for d, _ in judged]
    rows = record_row.rows(records)
    if (rows < 0).any():
        raise KeyError(records[int(np.argmax(rows < 0))])
    answers = np.split(rows, np.cumsum([len(judged) for judged in pos])[:-1]) if pos else []
    grades = [np.array([g for _, g in judged], dtype=np.float64) for judged in pos]
    return QuerySet(list(ids), emb, answers, grades)


def _pool_qrels(files: dict[str, dict[str, dict[str, int]]], labels: dict[str, str],
                corpus_row: IdLookup, query_row: IdLookup, notes: list[str],
                lines: dict[str, dict[tuple[str, str], int]] | None = None) -> dict[str, dict[str, int]]:
    """Merge qrels files, check every id, drop queries without a positive judgement (noted).

    ``lines`` (file name -> {(query, record): line}) lets messages name the offending line.
    Unknown ids are found first in one numpy lookup per id list, then reported in file order.
    """
    unknown_q = query_row.missing({q for judged in files.values() for q in judged})
    unknown_d = corpus_row.missing({d for part in files.values() for ds in part.values() for d in ds})
    def order(name: str) -> tuple[int, str]:
        return (QRELS_ORDER.index(name) if name in QRELS_ORDER else len(QRELS_ORDER), name)

    pooled: dict[str, dict[str, int]] = {}
    where: dict[tuple[str, str], str] = {}
    for name in sorted(files, key=order):
        line_of = (lines or {}).get(name, {})
        for qid, judged in files[name].items():
            if qid in unknown_q:
                raise DataError(f"query id {excerpt(qid)} is not in the query id list", labels[name],
                                line=line_of.get((qid, next(iter(judged), ""))))
            merged = pooled.setdefault(qid, {})
            for did, grade in judged.items():
                line = line_of.get((qid, did))
                if did in unknown_d:
                    raise DataError(f"corpus id {excerpt(did)} (query {excerpt(qid)}) is not in the "
                                    "corpus id list",
                                    labels[name], line=line)
                if did in merged and merged[did] != grade:
                    raise DataError(f"query {excerpt(qid)} judges record {excerpt(did)} {grade} here "
                                    f"but {merged[did]} in {where[(qid, did)]}", labels[name],
                                    line=line)
                merged[did] = grade
                where.setdefault((qid, did), labels[name])
    empty = [q for q, judged in pooled.items() if not any(g > 0 for g in judged.values())]
    for q in empty:
        del pooled[q]
    if empty:
        notes.append(f"excluded {len(empty)} queries without any positive judgement "
                     f"(e.g. {', '.join(excerpt(q) for q in empty[:3])})")
    if not pooled:
        raise DataError("no query has a positive judgement (score > 0); nothing to train or test on",
                        ", ".join(labels[name] for name in sorted(files, key=order)))
    return pooled


def _check_pair(corpus: np.ndarray, queries: np.ndarray, corpus_src: str, query_src: str) -> None:
    if corpus.shape[1] != queries.shape[1]:
        raise DataError(f"queries have dimension {queries.shape[1]} but the corpus has dimension "
                        f"{corpus.shape[1]}; both must come from the same model", query_src)


def _check_count(ids: list[str], arr: np.ndarray, ids_src: str, arr_src: str) -> None:
    if len(ids) != arr.shape[0]:
        hint = next((h for h in map(cr_only_hint, ids) if h), "")
        raise DataError(f"has {len(ids)} ids but {arr_src} has {arr.shape[0]} rows; expected one id "
                        f"per row{hint}", ids_src)


def available_models(folder: str | Path) -> list[str]:
    """Names of the embedding sets under ``folder/emb/`` (sorted)."""
    emb = Path(folder) / "emb"
    return sorted(p.name for p in emb.iterdir() if p.is_dir()) if emb.is_dir() else []


def _pick_model(root: Path, model: str | None) -> str:
    models = available_models(root)
    if not models:
        raise DataError("has no emb/<model>/ folder; expected emb/<model>/corpus.npy, queries.npy, "
                        "corpus_ids.txt and query_ids.txt", str(root))
    if model is None:
        if len(models) > 1:
            raise DataError(f"holds several embedding sets; choose one of {models}", str(root))
        return models[0]
    if model not in models:
        raise DataError(f"has no embedding set {excerpt(model)}; available: {models}", str(root))
    return model


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError("is a folder; expected a file" if path.is_dir() else "file is missing",
                        str(path))
    return path


def _read_qrels_dir(root: Path, max_bytes: int | None) -> tuple[dict, dict, dict]:
    qdir = root / "qrels"
    paths = sorted(qdir.glob("*.tsv")) if qdir.is_dir() else []
    if not paths:
        raise DataError("has no qrels/*.tsv file; expected at least one with header "
                        "'query-id<TAB>corpus-id<TAB>score'", str(root))
    lines: dict[str, dict[tuple[str, str], int]] = {p.stem: {} for p in paths}
    files = {p.stem: read_qrels(p, max_bytes, lines[p.stem]) for p in paths}
    return files, {p.stem: str(p) for p in paths}, lines


def _load_corpus(emb: Path, max_bytes: int | None, notes: list[str]):
    """``emb/corpus.npy`` (memory-mapped), or the row-shards of ``emb/corpus/``
    (:class:`~nudge_core.shards.ShardedCorpus`, each shard's header checked here and its values
    as it is first read)."""
    if not (emb / "corpus.npy").exists() and (emb / SHARD_DIR).is_dir():
        corpus = open_sharded(emb / SHARD_DIR)
        notes.append(f"corpus read from {corpus.n_shards} shards in {SHARD_DIR}/ (out of core)")
        return corpus
    return load_matrix(_require(emb / "corpus.npy"), "record embeddings", max_bytes, notes)


def load_dataset(path: str | Path, model: str | None = None, *, max_bytes: int | None = None,
                 load_texts: bool = True, extract_dir: str | Path | None = None,
                 max_zip_bytes: int = MAX_ZIP_BYTES, max_zip_members: int = MAX_ZIP_MEMBERS) -> Dataset:
    """Load and validate a dataset folder, or a ``.zip`` of one.

    ``model`` picks ``emb/<model>/`` (needed only when there are several). ``max_bytes`` caps each
    file (a ``.gz`` file's decompressed size included). A zip is checked (path traversal, symlinks,
    at most ``max_zip_members`` members expanding to at most ``max_zip_bytes``, expansion ratio) and
    extracted to ``extract_dir`` (default: a temporary folder); arrays are then read into memory so
    the folder can go. Valid but degenerate data (dimension 1, all records or all queries in one
    direction) is loaded with a note. Raises :class:`DataError` for any problem.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or folder", str(path))
    if path.is_file():
        if path.suffix.lower() != ".zip":
            raise DataError("expected a dataset folder or a .zip archive of one", str(path))

        def load(root: Path) -> Dataset:
            ds = load_dataset(root, model, max_bytes=max_bytes, load_texts=load_texts)
            ds.corpus_emb = np.array(ds.corpus_emb)  # detach from the extracted files
            ds.query_emb = np.array(ds.query_emb)
            ds.source, ds.name = str(path), path.stem
            return ds
        return _from_zip(path, extract_dir, load, max_zip_bytes, max_zip_members)
    root = dataset_root(path)
    model = _pick_model(root, model)
    emb = root / "emb" / model
    notes: list[str] = []
    corpus_ids = read_id_list(_require(emb / "corpus_ids.txt"), max_bytes)
    query_ids = read_id_list(_require(emb / "query_ids.txt"), max_bytes)
    corpus = _load_corpus(emb, max_bytes, notes)
    queries = load_matrix(_require(emb / "queries.npy"), "query embeddings", max_bytes, notes)
    _check_count(corpus_ids, corpus, str(emb / "corpus_ids.txt"),
                 "corpus.npy" if isinstance(corpus, np.ndarray) else f"{SHARD_DIR}/ (all shards)")
    _check_count(query_ids, queries, str(emb / "query_ids.txt"), "queries.npy")
    _check_pair(corpus, queries, str(emb / "corpus.npy"), str(emb / "queries.npy"))
    files, labels, lines = _read_qrels_dir(root, max_bytes)
    qrels = _pool_qrels(files, labels, corpus_ids.lookup, query_ids.lookup, notes, lines)
    notes += degenerate_notes(corpus, "records") + degenerate_notes(queries, "queries")
    corpus_text = query_text = None
    if load_texts:
        for name in ("corpus.jsonl", "corpus.jsonl.gz"):
            if (root / name).is_file():
                corpus_text = read_jsonl_texts(root / name, max_bytes, notes)
                break
        if (root / "queries.jsonl").is_file():
            query_text = read_jsonl_texts(root / "queries.jsonl", max_bytes, notes)
    return Dataset(name=root.name, model=model, corpus_ids=corpus_ids, corpus_emb=corpus,
                   query_ids=query_ids, query_emb=queries, qrels=qrels, qrels_files=files,
                   corpus_text=corpus_text, query_text=query_text, notes=notes, source=str(root))


def dataset_from_arrays(corpus_emb: np.ndarray, query_emb: np.ndarray,
                        qrels: dict[str, dict[str, int]], corpus_ids: list[str] | None = None,
                        query_ids: list[str] | None = None, *, name: str = "arrays",
                        model: str = "custom") -> Dataset:
    """A Dataset from arrays in memory, validated like files.

    ``corpus_ids``/``query_ids`` default to ``"0".."n-1"``; ``qrels`` is ``{query_id: {corpus_id:
    grade}}`` (grade > 0 = relevant).
    """
    notes: list[str] = []
    corpus = check_matrix(np.asarray(corpus_emb) if not isinstance(corpus_emb, np.ndarray)
                          else corpus_emb, "corpus_emb", "record embeddings", notes)
    queries = check_matrix(np.asarray(query_emb) if not isinstance(query_emb, np.ndarray)
                           else query_emb, "query_emb", "query embeddings", notes)
    _check_pair(corpus, queries, "corpus_emb", "query_emb")
    corpus_ids = _given_ids(corpus_ids, corpus.shape[0], "corpus_ids")
    query_ids = _given_ids(query_ids, queries.shape[0], "query_ids")
    for ids, arr, src in ((corpus_ids, corpus, "corpus_ids"), (query_ids, queries, "query_ids")):
        _check_count(ids, arr, src, src.replace("_ids", "_emb"))
        dup = ids.first_duplicate()
        if dup is not None:
            raise DataError(f"duplicate id {excerpt(ids[dup[1]])}", src)
    files = {"qrels": {str(q): {str(d): check_grade(g, f"qrels[{excerpt(q)}][{excerpt(d)}]")
                                for d, g in judged.items()} for q, judged in qrels.items()}}
    pooled = _pool_qrels(files, {"qrels": "qrels"}, corpus_ids.lookup, query_ids.lookup, notes)
    notes += degenerate_notes(corpus, "records") + degenerate_notes(queries, "queries")
    return Dataset(name=name, model=model, corpus_ids=corpus_ids, corpus_emb=corpus,
                   query_ids=query_ids, query_emb=queries, qrels=pooled, qrels_files=files,
                   notes=notes, source=name)


def _given_ids(ids, n: int, src: str) -> IdList:
    """Ids passed from Python (``str()`` of each), or ``"0".."n-1"`` when None."""
    try:
        return IdList.numbered(n) if ids is None else as_id_list(map(str, ids))
    except ValueError as exc:  # a lone surrogate
        raise DataError(str(exc), src) from None


@dataclass
class ExtraQueries:
    """A second labelled query set over a dataset's corpus (e.g. an out-of-distribution set)."""

    name: str
    queries: QuerySet
    texts: dict[str, str] | None
    notes: list[str]


def _from_zip(archive: Path, extract_dir: str | Path | None, load, max_bytes: int, max_members: int):
    """``load(root)`` of the folder inside ``archive`` (checked and extracted to ``extract_dir``,
    default a temporary folder removed afterwards); errors and notes name the archive and its
    member, never the temporary folder."""
    tmp = Path(extract_dir) if extract_dir else Path(tempfile.mkdtemp(prefix="nudge-zip-"))
    try:
        safe_extract_zip(archive, tmp, max_bytes=max_bytes, max_members=max_members)
        loaded = load(dataset_root(tmp))
        loaded.notes[:] = [n.replace(str(tmp) + os.sep, f"{archive.name}: ") for n in loaded.notes]
        return loaded
    except DataError as exc:
        inner, prefix = exc.source or "", str(tmp) + os.sep
        if inner != str(tmp) and prefix not in inner:
            raise
        where = str(archive) if inner == str(tmp) else \
            f"{archive} (member {inner.replace(prefix, '').replace(os.sep, '/')})"
        raise DataError(exc.message, where, line=exc.line, row=exc.row) from None
    finally:
        if extract_dir is None:
            remove_tree(tmp)


def load_query_set(path: str | Path, dataset: Dataset, *, max_bytes: int | None = None,
                   extract_dir: str | Path | None = None, max_zip_bytes: int = MAX_ZIP_BYTES,
                   max_zip_members: int = MAX_ZIP_MEMBERS) -> ExtraQueries:
    """Read ``path/emb/<dataset.model>/queries.npy`` + ``query_ids.txt`` + ``path/qrels/*.tsv``,
    from a folder or a ``.zip`` of one (extracted as :func:`load_dataset` does).

    Corpus ids in its qrels must exist in ``dataset``; dimensions must match.
    """
    if Path(path).is_file() and Path(path).suffix.lower() == ".zip":
        return _from_zip(Path(path), extract_dir,
                         lambda root: load_query_set(root, dataset, max_bytes=max_bytes),
                         max_zip_bytes, max_zip_members)
    if not Path(path).is_dir():
        what = "not a folder" if Path(path).exists() else "no such folder"
        raise DataError(f"{what}; expected a query-set folder (queries + qrels) or a .zip of one",
                        str(path))
    root = dataset_root(Path(path))
    model = _pick_model(root, dataset.model)
    emb = root / "emb" / model
    notes: list[str] = []
    ids = read_id_list(_require(emb / "query_ids.txt"), max_bytes)
    arr = load_matrix(_require(emb / "queries.npy"), "query embeddings", max_bytes, notes)
    _check_count(ids, arr, str(emb / "query_ids.txt"), "queries.npy")
    _check_pair(dataset.corpus_emb, arr, "corpus", str(emb / "queries.npy"))
    files, labels, lines = _read_qrels_dir(root, max_bytes)
    qrels = _pool_qrels(files, labels, dataset.record_row, ids.lookup, notes, lines)
    qids = list(qrels)
    rows = ids.lookup.rows(qids)
    qs = _resolve(qids, np.asarray(arr[rows], dtype=np.float32), qrels, dataset.record_row)
    notes += degenerate_notes(qs.emb, "OOD queries")
    texts = read_jsonl_texts(root / "queries.jsonl", max_bytes, notes) \
        if (root / "queries.jsonl").is_file() else None
    qs.texts = texts
    return ExtraQueries(name=root.name, queries=qs, texts=texts, notes=notes)
