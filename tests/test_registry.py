"""The method registry: a method added from outside appears everywhere without other edits."""

from __future__ import annotations

import json

import pytest

from nudge_core import cli, registry
from nudge_core.estimator import FineTuner
from synthetic import Flipped, make_arrays, write_dataset


def test_an_extra_method_runs_from_the_cli_and_lands_in_the_json(extra_method, tmp_path):
    corpus, queries, qrels = make_arrays(n_records=120, dim=8, n_queries=80, seed=2)
    write_dataset(tmp_path / "toy", corpus, queries, qrels)
    out = tmp_path / "r.json"
    assert cli.main(["run", str(tmp_path / "toy"), "--methods", "flipped,nudge-n",
                     "--flip-strength", "2", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert list(res["methods"]) == ["none", "flipped", "nudge-n"]
    flip = res["methods"]["flipped"]
    assert flip["metric"] == "cos" and flip["gamma"] is None
    assert flip["metrics"]["ndcg@10"] < res["methods"]["none"]["metrics"]["ndcg@10"]
    assert res["run_spec"]["methods"][1] == {"name": "flipped", "gamma": "auto",
                                             "params": {"strength": 2}, "objective": None,
                                             "choose": "smallest"}
    assert "--flip-strength" in res["run_spec"]["argv"]


def test_registry_table_and_errors():
    assert registry.names()[0] == registry.REFERENCE
    assert set(registry.gamma_methods()) <= set(registry.names())
    for name in registry.names():
        spec = registry.get(name)
        assert spec.label and spec.colour.startswith("#") and spec.objective
        assert isinstance(spec.build(), FineTuner)
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        registry.get("nope")
    with pytest.raises(ValueError, match="cannot be removed"):
        registry.unregister(registry.REFERENCE)
    with pytest.raises(ValueError, match="needs a gamma_flag"):
        registry.register(registry.MethodSpec("x", "x", "#000000", Flipped, "nothing", "cos", "none",
                                              gamma=registry.get("nudge-m").gamma))
