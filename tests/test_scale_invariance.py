"""Cosine-based results do not depend on the scale of the records or the queries (issue 10, 11).

Every method normalises records (and NUDGE its pulls) itself, so multiplying all records, or all
queries, by any finite non-zero factor must leave the CLI's γ and metrics unchanged (to float32
rounding of the scaled inputs), or be refused with a clear error. Before the fix a factor of 1e20
turned NDCG@10 to 0, and 1e-20 switched NUDGE off.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nudge_core import cli
from synthetic import make_arrays, write_dataset

ARGS = ["--methods", "none,adaptor,nudge-m,nudge-n", "--adaptor-epochs", "15", "--no-per-query"]
ARRAYS = make_arrays(n_records=150, dim=12, n_queries=100, seed=8, noise=0.6)


def run(folder, tmp_path, name: str) -> dict:
    out = tmp_path / f"{name}.json"
    assert cli.main(["run", str(folder), *ARGS, "--out", str(out)]) == 0
    return json.loads(out.read_text())["methods"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scale-ref")
    write_dataset(tmp / "ds", *ARRAYS)
    return run(tmp / "ds", tmp, "ref")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(exponent=st.floats(-30, 30), side=st.sampled_from(["records", "queries"]))
def test_metrics_do_not_depend_on_scale(reference, tmp_path_factory, exponent, side):
    corpus, queries, qrels = ARRAYS
    factor = np.float64(10.0) ** exponent
    if side == "records":
        corpus = (corpus.astype(np.float64) * factor).astype(np.float32)
    else:
        queries = (queries.astype(np.float64) * factor).astype(np.float32)
    tmp = tmp_path_factory.mktemp("scaled")
    write_dataset(tmp / "ds", corpus, queries, qrels)
    got = run(tmp / "ds", tmp, "scaled")
    for method, ref in reference.items():
        if ref["gamma"] is not None:
            assert got[method]["gamma"] == pytest.approx(ref["gamma"], rel=1e-4, abs=1e-9), method
        for metric in ("ndcg@10", "recall@10", "mrr@10", "ndcg@40"):
            assert got[method]["metrics"][metric] == pytest.approx(ref["metrics"][metric], abs=1e-6), \
                (method, metric, side, exponent)
