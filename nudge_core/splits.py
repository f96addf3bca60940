"""Query splits: the paper protocol, explicit JSON splits, the dataset's own qrels files, OOD.

A :class:`Split` is three disjoint lists of query ids (train, val, test) and, for the k-means
out-of-distribution protocol, a fourth list ``ood`` of test queries from the other cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import Dataset
from .errors import DataError
from .files import excerpt, parse_json


@dataclass
class Split:
    """Disjoint query-id lists. ``ood`` is empty unless an OOD protocol filled it."""

    train: list[str]
    val: list[str]
    test: list[str]
    ood: list[str] = field(default_factory=list)
    description: str = ""

    def sizes(self) -> dict[str, int]:
        out = {"train": len(self.train), "val": len(self.val), "test": len(self.test)}
        if self.ood:
            out["ood"] = len(self.ood)
        return out

    def to_json(self) -> dict[str, list[str]]:
        out = {"train": self.train, "val": self.val, "test": self.test}
        if self.ood:
            out["ood"] = self.ood
        return out


def check_split(split: Split, source: str = "split") -> Split:
    """Refuse empty train/val/test and any query in two parts."""
    for name in ("train", "val", "test"):
        if not getattr(split, name):
            raise DataError(f"the {name} split is empty; NUDGE needs training, validation and test "
                            "queries (use more labelled queries or other ratios)", source)
    seen: dict[str, str] = {}
    for name in ("train", "val", "test", "ood"):
        for q in getattr(split, name):
            if q in seen:
                raise DataError(f"query {excerpt(q)} is in both {seen[q]} and {name}", source)
            seen[q] = name
    return split


#: Orders in which the permutation is cut. "val-test-train" is the project's reference split (the
#: one the figures in README and ../shared were measured on); "train-val-test" is how the authors'
#: create_q_splits script slices the same permutation.
SPLIT_LAYOUTS = ("val-test-train", "train-val-test")
#: Each layout in words, as split descriptions (shown in the app and the results JSON) say it.
LAYOUT_WORDS = {"val-test-train": "validation and test queries cut first from the shuffled order, "
                                  "the rest for training",
                "train-val-test": "training queries cut first from the shuffled order, then "
                                  "validation, then test"}


def paper_split(query_ids: list[str], seed: int = 0, val_frac: float = 0.1,
                test_frac: float = 0.2, max_val: int = 10000, max_test: int = 10000,
                layout: str = "val-test-train") -> Split:
    """The NUDGE paper's split of pooled labelled queries.

    One permutation ``np.random.RandomState(seed).permutation(N)`` (what
    ``np.random.seed(seed); np.random.permutation(N)`` draws) of ``query_ids`` in pooled order;
    val = min(max_val, floor(val_frac N)) queries, test = min(max_test, floor(test_frac N)),
    train = the rest. ``layout`` says which part takes the permutation's first positions.
    """
    if layout not in SPLIT_LAYOUTS:
        raise DataError(f"layout must be one of {SPLIT_LAYOUTS}, got {excerpt(layout)}", "split")
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise DataError(f"ratios val={val_frac}, test={test_frac} must be in [0, 1) and sum to less "
                        "than 1", "split")
    n = len(query_ids)
    n_val = min(max_val, int(val_frac * n))
    n_test = min(max_test, int(test_frac * n))
    n_train = n - n_val - n_test
    perm = np.random.RandomState(seed).permutation(n)
    ids = [query_ids[i] for i in perm]
    if layout == "val-test-train":
        val, test, train = ids[:n_val], ids[n_val:n_val + n_test], ids[n_val + n_test:]
    else:
        train, val, test = ids[:n_train], ids[n_train:n_train + n_val], ids[n_train + n_val:]
    split = Split(train, val, test, description=f"paper protocol, seed {seed}, val {val_frac:g}, "
                  f"test {test_frac:g}, {LAYOUT_WORDS[layout]}")
    return check_split(split, f"split of {n} labelled queries")


def split_from_json(path: str | Path, dataset: Dataset) -> Split:
    """An explicit split file ``{"train": [...], "val": [...], "test": [...]}`` (``"ood"`` optional)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError("no such split file", str(path)) from None
    except UnicodeDecodeError:
        raise DataError("not valid UTF-8", str(path)) from None
    except OSError as exc:  # a folder, no permission, ...
        raise DataError(f"cannot read the split file ({exc.strerror or exc})", str(path)) from None
    return split_from_dict(parse_json(text, str(path)), dataset, str(path))


def split_from_dict(obj: object, dataset: Dataset, source: str = "split") -> Split:
    """Validate a split given as a dict of id lists against ``dataset``."""
    if not isinstance(obj, dict):
        raise DataError('expected a JSON object {"train": [...], "val": [...], "test": [...]}', source)
    extra = set(obj) - {"train", "val", "test", "ood"}
    if extra:
        raise DataError(f"unknown keys {sorted(extra)}; allowed: train, val, test, ood", source)
    parts: dict[str, list[str]] = {}
    for name in ("train", "val", "test", "ood"):
        values = obj.get(name, [])
        if not isinstance(values, list) or not all(isinstance(v, (str, int)) for v in values):
            raise DataError(f'"{name}" must be a list of query ids', source)
        ids = [v if isinstance(v, str) else _int_id(v, name, source) for v in values]
        for q in ids:
            if q not in dataset.query_row:
                raise DataError(f'"{name}" names query {excerpt(q)}, which is not in the dataset',
                                source)
            if q not in dataset.qrels:
                raise DataError(f'"{name}" names query {excerpt(q)}, which has no positive judgement',
                                source)
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dup = next(q for q in ids if q in seen or seen.add(q))
            raise DataError(f'"{name}" lists query {excerpt(dup)} twice', source)
        parts[name] = ids
    return check_split(Split(**parts, description=f"from {Path(source).name}"), source)


def _int_id(value: int, part: str, source: str) -> str:
    """An integer query id as text; one too long to be an id (or to convert) is refused."""
    if value.bit_length() > 200:
        raise DataError(f'"{part}" holds a number of about {value.bit_length() * 0.30103:,.0f} digits; '
                        "expected query ids", source)
    return str(value)


def split_from_qrels_files(dataset: Dataset, seed: int = 0, val_frac: float = 0.1) -> Split:
    """The dataset's own split: qrels/train.tsv -> train, dev/validation -> val, test -> test.

    Without a dev file, validation is carved from train: ``floor(val_frac * n_train)`` queries drawn
    with ``RandomState(seed)``.
    """
    files = dataset.qrels_files

    def usable(name: str) -> list[str]:
        return [q for q in files.get(name, {}) if q in dataset.qrels]

    train, test = usable("train"), usable("test")
    val = next((usable(n) for n in ("dev", "validation", "val") if n in files), None)
    if not train or not test:
        raise DataError(f"needs qrels/train.tsv and qrels/test.tsv; found {sorted(files)}", "qrels")
    if val is None:
        n_val = int(val_frac * len(train))
        perm = np.random.RandomState(seed).permutation(len(train))
        chosen = set(perm[:n_val].tolist())
        val = [q for i, q in enumerate(train) if i in chosen]
        train = [q for i, q in enumerate(train) if i not in chosen]
    return check_split(Split(train, val, test, description="dataset qrels files"), "qrels")


def kmeans_ood_split(dataset: Dataset, split: Split, seed: int = 0) -> Split:
    """The authors' distribution-shift protocol on top of ``split``.

    k-means (2 clusters, ``random_state=seed``, ``n_init="auto"``, scikit-learn) on the training
    queries' embeddings; validation and test queries go to the nearer centre. Cluster 0's train and
    val queries fine-tune; its test queries are in-distribution (``test``); cluster 1's test queries
    are out-of-distribution (``ood``).
    """
    from sklearn.cluster import KMeans

    def emb(ids: list[str]) -> np.ndarray:
        return np.asarray(dataset.query_emb[[dataset.query_row[q] for q in ids]], dtype=np.float32)

    if len(split.train) < 2:
        raise DataError("k-means OOD split needs at least 2 training queries", "split")
    km = KMeans(n_clusters=2, random_state=seed, n_init="auto").fit(emb(split.train))
    train = [q for q, c in zip(split.train, km.labels_) if c == 0]
    val = [q for q, c in zip(split.val, km.predict(emb(split.val))) if c == 0]
    test_labels = km.predict(emb(split.test))
    test = [q for q, c in zip(split.test, test_labels) if c == 0]
    ood = [q for q, c in zip(split.test, test_labels) if c == 1]
    out = Split(train, val, test, ood, description=f"{split.description}; k-means OOD (seed {seed})")
    if not ood:
        raise DataError("k-means put no test query in cluster 1; the OOD test set is empty", "split")
    return check_split(out, "k-means OOD split")
