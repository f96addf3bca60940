"""Toy problems on the unit circle (2-D) or sphere (3-D) where NUDGE's geometry is exact.

Each preset teaches one idea (issue 14) and is an ordinary retrieval problem: unit-norm records,
training / validation / test queries with judgements, and sometimes an out-of-distribution
query. Nothing here re-implements NUDGE: :func:`fit_at` runs the engine's own estimators at a
fixed γ, :func:`validation_curve` their own γ search, so a notebook, the tests and the app's
Playground page all see the engine's numbers.

    toy = preset("ood", dim=2)
    e_m = fit_at(toy, "nudge-m", 1.2).embeddings_   # (n_records, 2), not unit norm
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import registry
from .data import Dataset, QuerySet, dataset_from_arrays
from .retrieval import normalize_rows

PRESETS = ("one-pull", "two-pulls", "overfit", "ood", "away", "random")
PARTS = ("train", "val", "test", "ood")


@dataclass
class Step:
    """One step of a lesson: the γ every method's slider is set to and what to say about it."""

    gamma: float
    text: str


@dataclass
class Toy:
    """A toy problem: ``records`` (n, dim) float32 unit norm; query sets of a
    :class:`~nudge_core.data.Dataset` built from them (``train``, ``val``, ``test``, ``ood``,
    possibly empty); ``title``, ``explanation`` (2-3 sentences) and ``steps`` (a lesson)."""

    name: str
    title: str
    explanation: str
    dataset: Dataset
    train: QuerySet
    val: QuerySet
    test: QuerySet
    ood: QuerySet | None = None
    steps: list[Step] = field(default_factory=list)

    @property
    def records(self) -> np.ndarray:
        """(n, dim) float32 unit-norm records, exactly as the engine normalises them (so a
        record NUDGE does not move is drawn where it started, to the bit)."""
        return normalize_rows(self.dataset.corpus_emb)

    @property
    def dim(self) -> int:
        return self.dataset.dim


def on_sphere(degrees, dim: int, tilt: float = 0.0) -> np.ndarray:
    """Unit vectors at these angles: on the circle (dim 2), or on the sphere at latitude ``tilt``
    plus a small per-point pattern so that the 3-D picture is not flat (dim 3)."""
    a = np.radians(np.asarray(degrees, np.float64))
    if dim == 2:
        return np.column_stack([np.cos(a), np.sin(a)]).astype(np.float32)
    if dim != 3:
        raise ValueError(f"dim must be 2 or 3, got {dim!r}")
    lat = np.radians(tilt + 12.0 * np.sin(3 * a))
    return np.column_stack([np.cos(a) * np.cos(lat), np.sin(a) * np.cos(lat), np.sin(lat)]).astype(np.float32)


def build(name: str, title: str, explanation: str, record_angles, queries: list[tuple], dim: int,
          steps: list[Step] = ()) -> Toy:
    """A :class:`Toy` from record angles and queries ``(part, angle, {record: grade})`` with part
    train / val / test / ood (a query can be given in vector form instead of an angle)."""
    records = on_sphere(record_angles, dim)
    vectors = [on_sphere([q[1]], dim)[0] if np.ndim(q[1]) == 0 else np.asarray(q[1], np.float32)
               for q in queries]
    ids = [f"{part}{j}" for j, (part, *_) in enumerate(queries)]
    qrels = {qid: {str(r): g for r, g in q[2].items()} for qid, q in zip(ids, queries)}
    ds = dataset_from_arrays(records, np.array(vectors, np.float32), qrels, query_ids=ids, name=name,
                             model="toy")
    parts = {p: [qid for qid, q in zip(ids, queries) if q[0] == p] for p in ("train", "val", "test", "ood")}
    return Toy(name, title, explanation, ds, *(ds.queries(parts[p]) for p in ("train", "val", "test")),
               ds.queries(parts["ood"]) if parts["ood"] else None, list(steps))


def preset(name: str, dim: int = 2, seed: int = 0, n_records: int = 12, n_queries: int = 24) -> Toy:
    """One of :data:`PRESETS` in 2-D or 3-D (``seed`` and the sizes apply to "random")."""
    if name == "one-pull":
        return build(name, "One record, one query: the pull and the bound",
                     "Record 0 is relevant to the training query (cross), so NUDGE moves it toward "
                     "that query. NUDGE-M moves it by exactly γ along the pull, off the circle; "
                     "NUDGE-N keeps it on the circle and changes it by at most √γ. Past the point "
                     "where it passes record 1, record 0 answers the validation query first.",
                     [0, 95, 200], [("train", 60, {0: 1}), ("val", 72, {0: 1}), ("test", 55, {0: 1})],
                     dim, [Step(0.0, "Before fine-tuning: record 1 is "
                                "closer to the validation query than record 0."),
                           Step(0.5, "Record 0 moves toward its "
                                "training query: NUDGE-M by exactly γ, NUDGE-N along the circle."),
                           Step(1.5, "Now record 0 ranks first for the "
                                "validation query too.")])
    if name == "two-pulls":
        return build(name, "Two queries pull one record: the pull is their sum",
                     "Record 0 answers two training queries in different directions. Its pull is "
                     "their sum, so it moves between them, toward the stronger side, not toward "
                     "either one.", [0, 40, -35, 180],
                     [("train", 75, {0: 1}), ("train", -45, {0: 1}), ("val", 12, {0: 1}),
                      ("test", 20, {0: 1})], dim,
                     [Step(0.0, "Two training queries, one record."),
                      Step(0.6, "The record moves along the sum of "
                           "both pulls: between them.")])
    if name == "overfit":
        return build(name, "γ too large: training fits, validation falls",
                     "Record 0's training query sits far from where its validation queries ask. "
                     "A small γ helps the validation query near record 0; a large one drags the "
                     "record past record 1 toward the training query (NUDGE-N) or makes it so long "
                     "that it steals record 2's validation query (NUDGE-M): the validation curve "
                     "rises, then falls, while the training query is fitted better and better.",
                     [0, 50, 155], [("train", 85, {0: 1}), ("val", 28, {0: 1}),
                                    ("val", 145, {2: 1}), ("test", 25, {0: 1}), ("test", 148, {2: 1})],
                     dim, [Step(0.0, "Record 1 wins the validation "
                                "query at 28°."),
                           Step(0.4, "A small move: record 0 now "
                                "wins it, and record 2 still wins its own."),
                           Step(4.0, "Too far: NUDGE-N's record 0 has passed record 1 and "
                                "lost the query at 28°; NUDGE-M's, now long, wins record 2's "
                                "query too (in 2-D).")])
    if name == "ood":
        return build(name, "NUDGE-M vs NUDGE-N on an out-of-distribution query",
                     "NUDGE-M makes moved records longer, and a long record scores high for every "
                     "query roughly in its direction, including ones it does not answer. The OOD "
                     "query (square) belongs to record 1; NUDGE-M's record 0 steals it as γ grows, "
                     "NUDGE-N's cannot, because it stays unit length.",
                     [0, 90], [("train", 45, {0: 1}), ("val", 30, {0: 1}), ("test", 35, {0: 1}),
                               ("ood", 80, {1: 1})], dim,
                     [Step(0.0, "Record 1 answers the OOD query."),
                      Step(0.5, "Both variants move record 0 toward "
                           "its training query."),
                      Step(1.5, "NUDGE-M's longer record 0 now "
                           "outscores record 1 on the OOD query; NUDGE-N's does not.")])
    if name == "away":
        return build(name, "A record whose training query points away from it",
                     "Record 0's only training query lies 100° away. NUDGE-N does not move such a "
                     "record until its pull direction ĉ itself is within the bound, "
                     "γ = 2(1 − cos 100°) ≈ 2.35 > 2, and then puts it on ĉ at once. NUDGE-M "
                     "moves it by γ from the start.", [0, 50, 170],
                     [("train", 100, {0: 1}), ("val", 95, {0: 1}), ("test", 105, {0: 1})], dim,
                     [Step(0.0, "The training query is 100° away."),
                      Step(1.9, "NUDGE-N has not moved it yet."),
                      Step(2.4, "Past γ ≈ 2.35 NUDGE-N jumps to ĉ.")])
    if name == "random":
        return random_toy(seed, n_records, n_queries, dim)
    raise ValueError(f"preset must be one of {PRESETS}, got {name!r}")


def random_toy(seed: int, n_records: int, n_queries: int, dim: int = 2) -> Toy:
    """Random records and queries near them (one relevant record each), split 60/20/20."""
    if not 2 <= n_records <= 200 or not 5 <= n_queries <= 200:
        raise ValueError("random toys take 2-200 records and 5-200 queries")
    rng = np.random.default_rng(seed)
    angles = np.sort(rng.uniform(0, 360, n_records))
    answer = rng.integers(0, n_records, n_queries)
    q_angles = angles[answer] + rng.normal(0, 25, n_queries)
    parts = ["train"] * n_queries
    cut_val, cut_test = int(n_queries * 0.6), int(n_queries * 0.8)
    parts[cut_val:cut_test] = ["val"] * (cut_test - cut_val)
    parts[cut_test:] = ["test"] * (n_queries - cut_test)
    return build("random", f"Random problem (seed {seed})",
                 "Random records on the circle and queries scattered around the record they "
                 "answer. Move γ and watch which validation queries each variant wins or loses.",
                 angles, [(p, q, {int(a): 1}) for p, q, a in zip(parts, q_angles, answer)], dim)


def positions(toy: Toy, method: str, gamma: float) -> np.ndarray:
    """(n_records, dim) float32: where ``method`` puts every record at ``gamma`` (the engine's
    fitted embeddings; what the Playground draws)."""
    return fit_at(toy, method, gamma).embeddings_


def fit_at(toy: Toy, method: str, gamma: float):
    """The engine's estimator for ``method`` fitted on the toy at a fixed ``gamma``."""
    return registry.get(method).build(gamma=float(gamma)).fit(toy.records, toy.train, toy.val)


def validation_curve(toy: Toy, method: str, **settings):
    """The engine's own γ search on the toy (the Fine-tune page's code path): the fitted
    estimator, with ``curve_gammas_`` / ``curve_objective_`` and the chosen ``gamma_``."""
    return registry.get(method).build(**settings).fit(toy.records, toy.train, toy.val)


def rankings(toy: Toy, estimator, queries: QuerySet) -> np.ndarray:
    """(n_queries, n_records) record rows each query retrieves, best first."""
    return estimator.search(queries.emb, toy.dataset.n_records)


def angle_of(xy) -> float:
    """Degrees in (-180, 180] of a point's direction in the x-y plane (its azimuth on the
    sphere): where a click or a table row puts a point on the circle."""
    return float(np.degrees(np.arctan2(float(xy[1]), float(xy[0]))))


def describe(toy: Toy) -> tuple[list[dict], list[dict]]:
    """The toy as the two small tables the Playground edits: records ``{"record", "angle"}`` and
    queries ``{"part", "angle", "relevant record"}`` (angles in degrees; each query's first
    relevant record; angles rounded to 1e-4°). :func:`from_tables` turns them back into a
    :class:`Toy`."""
    records = [{"record": i, "angle": round(angle_of(r), 4)} for i, r in enumerate(toy.records)]
    queries = [{"part": part, "angle": round(angle_of(q), 4), "relevant record": int(a[0])}
               for part in PARTS if getattr(toy, part) is not None
               for q, a in zip(getattr(toy, part).emb, getattr(toy, part).answers)]
    return records, queries


def _number(value, where: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if not np.isfinite(x):
        raise ValueError(f"{where}: the angle must be a number of degrees, got {value!r}")
    return x


def from_tables(toy: Toy, records: list[dict], queries: list[dict]) -> Toy:
    """The edited problem: ``toy``'s title, story and lesson over the records and queries of the
    tables (see :func:`describe`). Records are numbered by row; a query's "relevant record"
    names a row. Raises ValueError naming the row and what was expected."""
    if not records:
        raise ValueError("at least one record is needed")
    angles = [_number(r.get("angle"), f"record row {i}") for i, r in enumerate(records)]
    rows = []
    for j, q in enumerate(queries):
        if q.get("part") not in PARTS:
            raise ValueError(f"query row {j}: part must be one of {', '.join(PARTS)}, got {q.get('part')!r}")
        rel = q.get("relevant record")
        if rel is None or isinstance(rel, bool) or float(rel) != int(float(rel)) \
                or not 0 <= int(float(rel)) < len(angles):
            raise ValueError(f"query row {j}: relevant record must be a record row, 0 to "
                             f"{len(angles) - 1}, got {rel!r}")
        rows.append((q["part"], _number(q.get("angle"), f"query row {j}"), {int(float(rel)): 1}))
    for part, why in (("train", "NUDGE moves records toward their training queries"),
                      ("val", "the validation curve needs one")):
        if not any(r[0] == part for r in rows):
            raise ValueError(f"at least one {part} query is needed ({why})")
    return build("edited", toy.title.removesuffix(" (edited)") + " (edited)", toy.explanation,
                 angles, rows, toy.dim, toy.steps)


def move(records: list[dict], queries: list[dict], point: str, degrees: float):
    """Copies of the tables with ``point`` ("record i" or "query j", a row) put at ``degrees``:
    what a click on the Playground's figure does."""
    kind, _, row = point.partition(" ")
    table = {"record": records, "query": queries}.get(kind)
    if table is None or not row.isdigit() or not int(row) < len(table):
        raise ValueError(f"no point {point!r} to move (records 0-{len(records) - 1}, "
                         f"queries 0-{len(queries) - 1})")
    table = [dict(r) for r in table]
    table[int(row)]["angle"] = float(degrees)
    return (table, queries) if kind == "record" else (records, table)
