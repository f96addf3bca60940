"""Small deterministic synthetic retrieval data for tests: clustered records, and queries that are
noisy mixtures of their relevant records, so NUDGE has something to learn."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from nudge_core.data import Dataset, dataset_from_arrays
from nudge_core.estimator import FineTuner, unit_records
from nudge_core.index import ExactIndex


def make_arrays(n_records: int = 300, dim: int = 16, n_queries: int = 120, seed: int = 0,
                max_answers: int = 3, noise: float = 0.9, graded: bool = False):
    """(corpus (n, d) float32 not unit norm, queries (m, d) float32 unit norm, qrels dict)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((8, dim))
    corpus = centres[rng.integers(0, 8, n_records)] + 0.8 * rng.standard_normal((n_records, dim))
    corpus *= rng.uniform(0.5, 2.0, (n_records, 1))  # not unit norm on purpose
    hot = rng.choice(n_records, size=max(n_records // 5, 4), replace=False)  # popular answers
    queries, qrels = [], {}
    for j in range(n_queries):
        k = int(rng.integers(1, max_answers + 1))
        ans = rng.choice(hot, size=k, replace=False)
        unit = corpus[ans] / np.linalg.norm(corpus[ans], axis=1, keepdims=True)
        q = unit.mean(axis=0) + noise * rng.standard_normal(dim) / np.sqrt(dim) * 3
        queries.append(q / np.linalg.norm(q))
        grades = rng.integers(1, 3, k) if graded else np.ones(k, dtype=int)
        qrels[f"q{j}"] = {f"d{a}": int(g) for a, g in zip(ans, grades)}
    return corpus.astype(np.float32), np.array(queries, dtype=np.float32), qrels


def make_dataset(**kwargs) -> Dataset:
    corpus, queries, qrels = make_arrays(**kwargs)
    return dataset_from_arrays(corpus, queries, qrels,
                               corpus_ids=[f"d{i}" for i in range(len(corpus))],
                               query_ids=[f"q{j}" for j in range(len(queries))], name="synthetic")


def write_dataset(folder, corpus, queries, qrels, model: str = "toy", texts: bool = True) -> None:
    """Write arrays + qrels in the dataset-folder layout."""
    from pathlib import Path

    folder = Path(folder)
    emb = folder / "emb" / model
    emb.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    np.save(emb / "corpus.npy", corpus)
    np.save(emb / "queries.npy", queries)
    (emb / "corpus_ids.txt").write_text("".join(f"d{i}\n" for i in range(len(corpus))))
    (emb / "query_ids.txt").write_text("".join(f"q{j}\n" for j in range(len(queries))))
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q, judged in qrels.items()
                                              for d, g in judged.items()]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    if texts:
        import json
        (folder / "corpus.jsonl").write_text("".join(
            json.dumps({"_id": f"d{i}", "title": f"Doc {i}", "text": f"text of record {i}"}) + "\n"
            for i in range(len(corpus))))
        (folder / "queries.jsonl").write_text("".join(
            json.dumps({"_id": f"q{j}", "text": f"question {j}"}) + "\n" for j in range(len(queries))))


def write_toy(folder, **kwargs) -> Path:
    """A synthetic dataset (:func:`make_arrays` with ``kwargs``) written as a dataset folder."""
    write_dataset(folder, *make_arrays(**kwargs))
    return Path(folder)


def zip_folder(folder: Path, root: str = "toy") -> bytes:
    """The files under ``folder`` as an in-memory zip, each stored under ``root/``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(Path(folder).rglob("*")):
            if p.is_file():
                zf.write(p, f"{root}/{p.relative_to(folder)}")
    return buf.getvalue()


class Flipped(FineTuner):
    """A trivial method: searches the original records with negated queries (so it must lose)."""

    def __init__(self, strength: int = 1) -> None:
        self.strength = strength

    def fit(self, records, train, val, *, normalized=None):
        self._check_params()
        self.index_ = ExactIndex(unit_records(records, normalized))
        self.fit_seconds_ = 0.0
        return self

    def transform_queries(self, queries):
        return -self.strength * np.asarray(queries, np.float32)
