"""Tables and downloadable files from an :class:`ExperimentResult`.

Tables are lists of dicts (one row each) that the app shows as data frames; files are bytes:
the CLI's results JSON, per-query CSV, fine-tuned embeddings as a zip of ``.npy`` + ids, and the
command line that reproduces the run. Nothing here changes a number: every value is the engine's.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
import zipfile

import numpy as np

from . import registry
from .data import Dataset, QuerySet
from .experiment import COMPARED, ExperimentResult
from .metrics import FAMILIES, KS
from .runspec import RunSpec
from .significance import TIE_TOLERANCE


def metrics_rows(result: ExperimentResult, ood: bool = False) -> list[dict]:
    """One row per method: γ, fit seconds and every metric@k (test queries, or OOD ones)."""
    rows = []
    for name, res in result.methods.items():
        values = res.ood_metrics if ood else res.metrics
        if values is None:
            continue
        row = {"method": name, "gamma": res.gamma, "fit_seconds": round(res.fit_seconds, 3)}
        row.update({f"{f}@{k}": values[f"{f}@{k}"] for f in FAMILIES for k in KS})
        rows.append(row)
    return rows


def comparison_rows(result: ExperimentResult, ood: bool = False) -> list[dict]:
    """One row per (method, compared metric): before, after, Δ, 95% CI, p, wins/losses/ties."""
    rows = []
    for name, res in result.methods.items():
        comp = res.ood_comparison if ood else res.comparison
        for metric in COMPARED:
            if metric in comp:
                c = comp[metric]
                rows.append({"method": name, "metric": metric, "before": c["before"],
                             "after": c["after"], "delta": c["delta"], "ci_low": c["ci_low"],
                             "ci_high": c["ci_high"], "p_value": c["p_value"], "wins": c["wins"],
                             "losses": c["losses"], "ties": c["ties"]})
    return rows


def ood_rows(result: ExperimentResult, metric: str = "ndcg@10") -> list[dict]:
    """For each fine-tuned method: Δ``metric`` with CI on in-distribution and on OOD test queries."""
    rows = []
    reference = result.methods[registry.REFERENCE]
    for name, res in result.methods.items():
        if name == registry.REFERENCE:
            continue
        for part, comp, values, base in (
                ("in-distribution", res.comparison, res.metrics, reference.metrics),
                ("OOD", res.ood_comparison, res.ood_metrics, reference.ood_metrics)):
            if metric in comp and values is not None:
                c = comp[metric]
                rows.append({"method": name, "part": part, "before": base[metric],
                             "after": values[metric], "delta": c["delta"], "ci_low": c["ci_low"],
                             "ci_high": c["ci_high"], "p_value": c["p_value"], "wins": c["wins"],
                             "losses": c["losses"], "ties": c["ties"]})
    return rows


def per_query_rows(result: ExperimentResult, ood: bool = False) -> list[dict]:
    """One row per (query, method) with every per-query metric."""
    qs = result.ood if ood else result.test
    if qs is None:
        return []
    rows = []
    for name, res in result.methods.items():
        pq = res.ood_per_query if ood else res.per_query
        if pq is None:
            continue
        for j, qid in enumerate(qs.ids):
            rows.append({"query_id": qid, "method": name, **{m: float(v[j]) for m, v in pq.items()}})
    return rows


def per_query_csv(result: ExperimentResult, ood: bool = False) -> bytes:
    rows = per_query_rows(result, ood)
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def wins_losses(result: ExperimentResult, method: str, metric: str = "ndcg@10", n: int = 10,
                texts: dict[str, str] | None = None) -> list[dict]:
    """The ``n`` biggest wins and ``n`` biggest losses of ``method`` vs no fine-tuning, by change
    in ``metric`` on test queries (largest |change| first within each group)."""
    before = result.methods[registry.REFERENCE].per_query[metric]
    after = result.methods[method].per_query[metric]
    diff = after - before
    order = np.argsort(-diff, kind="stable")
    rows = []
    for kind, picks in (("win", [j for j in order if diff[j] > TIE_TOLERANCE][:n]),
                        ("loss", [j for j in order[::-1] if diff[j] < -TIE_TOLERANCE][:n])):
        for j in picks:
            qid = result.test.ids[j]
            rows.append({"kind": kind, "query_id": qid, "before": float(before[j]),
                         "after": float(after[j]), "change": float(diff[j]),
                         "query": (texts or {}).get(qid, "")})
    return rows


def topk_table(dataset: Dataset, queries: QuerySet, j: int, before: np.ndarray, after: np.ndarray,
               text_of=None) -> list[dict]:
    """Side-by-side top-k of query ``j`` before and after: rank, record ids, relevance, texts.

    ``before``/``after`` are (k,) record rows; ``text_of(record_id) -> str | None`` supplies texts
    (default: the dataset's corpus texts)."""
    grade = dict(zip(queries.answers[j].tolist(), queries.grades[j].tolist()))
    if text_of is None:
        texts = dataset.corpus_text or {}
        text_of = texts.get
    rows = []
    for rank, (rb, ra) in enumerate(zip(before, after), start=1):
        row = {"rank": rank}
        for side, r in (("before", int(rb)), ("after", int(ra))):
            rid = dataset.corpus_ids[r] if r >= 0 else ""
            row[f"{side}_id"] = rid
            row[f"{side}_relevant"] = grade.get(r, 0)
            row[f"{side}_text"] = (text_of(rid) or "")[:300] if rid else ""
        rows.append(row)
    return rows


def results_json(result: ExperimentResult, per_query: bool = True) -> bytes:
    """The CLI's ``--out`` file, byte for byte the same serialisation."""
    return json.dumps(result.to_json(per_query), indent=1).encode("utf-8")


def embeddings_zip(result: ExperimentResult, methods: list[str] | None = None) -> bytes:
    """A zip with ``<method>/corpus.npy`` (float32, what is searched) and ``<method>/corpus_ids.txt``
    for each method (as the CLI's ``--save-embeddings``), with each estimator's ``serving_files()``."""
    buf = io.BytesIO()
    ids = ("\n".join(result.dataset.corpus_ids) + "\n").encode("utf-8")
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # float data barely compresses
        for name, res in result.methods.items():
            if methods is not None and name not in methods:
                continue
            zf.writestr(f"{name}/corpus.npy", npy_bytes(np.asarray(res.embeddings, np.float32)))
            zf.writestr(f"{name}/corpus_ids.txt", ids)
            for extra, array in res.estimator.serving_files().items():
                zf.writestr(f"{name}/{extra}", npy_bytes(array))
    return buf.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def reproduce_command(spec: RunSpec, out: str = "result.json") -> str:
    """The ``nudge-explorer run`` command that runs ``spec`` (a result's ``spec``) and writes
    its results JSON to ``out``."""
    return shlex.join(["nudge-explorer", *spec.to_argv("--out", out)])


def split_json(result: ExperimentResult) -> bytes:
    """The split used, as a file ``--splits`` accepts (OOD ids included for the k-means protocol)."""
    return json.dumps(result.split.to_json(), indent=1).encode("utf-8")


def dataset_facts(dataset: Dataset, split=None, record_texts: str | None = None) -> list[dict]:
    """Facts about a dataset (and a split of it) as (fact, value) rows for the Data page.

    ``record_texts`` overrides the "record texts" entry (e.g. texts rebuilt from elsewhere)."""
    answers = [len(dataset.qrels[q]) for q in dataset.labelled_ids]
    positives = [sum(1 for g in dataset.qrels[q].values() if g > 0) for q in dataset.labelled_ids]
    rows = [("dataset", dataset.name), ("embedding model", dataset.model),
            ("records", f"{dataset.n_records:,}"), ("dimension", str(dataset.dim)),
            ("queries with embeddings", f"{len(dataset.query_ids):,}"),
            ("labelled queries (≥ 1 relevant record)", f"{len(dataset.labelled_ids):,}"),
            ("relevant records per query (mean / median / max)",
             f"{np.mean(positives):.2f} / {np.median(positives):g} / {max(positives)}"),
            ("judgements per query (mean)", f"{np.mean(answers):.2f}"),
            ("record texts", record_texts or ("yes" if dataset.corpus_text else "no")),
            ("query texts", "yes" if dataset.query_text else "no")]
    if split is not None:
        for name, n in split.sizes().items():
            rows.append((f"{name} queries", f"{n:,}"))
        touched = np.unique(np.concatenate(dataset.queries(split.train).answers)) \
            if split.train else np.zeros(0)
        rows.append(("records any training query pulls",
                     f"{len(touched):,} ({len(touched) / dataset.n_records:.1%} of all records)"))
    return [{"fact": k, "value": v} for k, v in rows]


# ---------------------------------------------------------------- the sensitivity sweep
def _seeds(sweep, seeds) -> list:
    n = max((v.shape[0] for parts in sweep.values.values() for v in parts.values()), default=0)
    return list(seeds) if seeds is not None else list(range(n))


def seed_rows(sweep, seeds=None) -> list[dict]:
    """One row per (split seed, method) of a :class:`~nudge_core.sensitivity.SweepResult`: the γ
    the run's own setting chose on that split and the test / OOD metrics of that fit, each with its
    change against no fine-tuning (γ = 0) on the same split. ``seeds``: the seed of each split
    (default 0, 1, ...)."""
    rows = []
    for i, seed in enumerate(_seeds(sweep, seeds)):
        for method, gammas in sweep.chosen.items():
            if i >= len(gammas):
                continue
            row = {"seed": seed, "method": method, "chosen_gamma": gammas[i]}
            kept = sweep.chosen_metrics.get(method, [])
            kept = kept[i] if i < len(kept) else {}
            for part in ("test", "ood"):
                if part not in kept:
                    continue
                for m, value in kept[part].items():
                    row[f"{part} {m}"] = value
                    row[f"{part} Δ{m}"] = value - kept[f"{part} before"][m]
            rows.append(row)
    return rows


def sweep_rows(sweep, seeds=None) -> list[dict]:
    """The sweep's curves in long form: one row per (method, part, split seed, γ) with the value
    of ``sweep.metric``."""
    seeds = _seeds(sweep, seeds)
    rows = []
    for method, parts in sweep.values.items():
        for part, values in parts.items():
            for i, curve in enumerate(values):
                rows.extend({"method": method, "part": part, "seed": seeds[i], "gamma": float(g),
                             sweep.metric: float(v)} for g, v in zip(sweep.gammas[method], curve))
    return rows


def rows_csv(rows: list[dict]) -> bytes:
    """``rows`` (dicts, the first one's keys as the header; later keys added) as CSV bytes."""
    out = io.StringIO()
    if rows:
        fields = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def sweep_json(sweep, seeds=None) -> bytes:
    """The sweep (:meth:`SweepResult.to_json`) with its split seeds and the per-seed table."""
    out = sweep.to_json()
    out["seeds"] = _seeds(sweep, seeds)
    out["per_seed"] = seed_rows(sweep, seeds)
    return json.dumps(out, indent=1).encode("utf-8")
