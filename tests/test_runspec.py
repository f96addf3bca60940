"""The run spec: one validated object, exact round trips through the CLI's arguments and JSON."""

from __future__ import annotations

import json

import pytest

from nudge_core import registry
from nudge_core.gamma_path import MAX_GRID
from nudge_core.runspec import (GammaSpec, MethodSettings, RunSpec, SpecError, SplitSpec, make_split,
                                parse_number)
from nudge_core.splits import kmeans_ood_split, paper_split
from synthetic import make_dataset

SPECS = [
    RunSpec("data/x"),
    RunSpec("d", "model-a", SplitSpec(seed=3, val_frac=0.15, test_frac=0.25, layout="train-val-test"),
            ("nudge-n", "adaptor"), ood="kmeans", max_file_mb=12.5),
    RunSpec("d", split=SplitSpec("qrels", seed=4, val_frac=0.2),
            methods=(MethodSettings("nudge-m", "0.1,0.3"), MethodSettings("nudge-n", "0:0.1:0.005",
                                                                          {"val_k": 3}))),
    RunSpec("d", split=SplitSpec("file", seed=7, file="splits.json"),
            methods=(MethodSettings("nudge-m", 0.2015), MethodSettings("adaptor", params={"max_epochs": 9})),
            ood="some/ood dir"),
    RunSpec("-dash data", "-model", SplitSpec("file", file="-s.json"), ood="-ood"),
    RunSpec("d", indexes=("int8", "hnsw:M=32,ef=64", "binary:rescore=40")),
    RunSpec("d", indexes=("int8", "binary"), tune_for_index=True),
    RunSpec("d", methods=(MethodSettings("nudge-m", 2.0), "nudge-n"), indexes=("truncate:dim=8",),
            tune_for_index=True),
    RunSpec("d", methods=(MethodSettings("nudge-m", "exact:0:2", objective="ndcg@10",
                                         choose="plateau-middle"),
                          MethodSettings("nudge-n", "exact", objective="ndcg@10",
                                         choose="plateau-middle"))),
]


@pytest.mark.parametrize("spec", SPECS)
def test_argv_and_json_round_trips_are_exact(spec):
    assert RunSpec.from_argv(spec.to_argv()) == spec
    assert RunSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert spec.methods[0].name == registry.REFERENCE


def test_a_range_stays_a_range():
    spec = RunSpec.from_argv(["run", "d", "--gamma-n", "0:0.1:0.005"])
    gamma = spec.method("nudge-n").gamma
    assert gamma.mode == "range" and str(gamma) == "0.0:0.1:0.005"
    assert "0.0:0.1:0.005" in spec.to_argv()
    assert len(gamma.grid()) == 21 and gamma.grid()[-1] == 0.1


def test_gamma_is_checked_only_against_the_methods_it_sets():
    assert RunSpec.from_argv(["run", "d", "--methods", "nudge-m", "--gamma", "5"]).method(
        "nudge-m").gamma.value == 5
    both = RunSpec.from_argv(["run", "d", "--gamma", "5", "--gamma-n", "0.1"])
    assert both.method("nudge-m").gamma.value == 5 and both.method("nudge-n").gamma.value == 0.1
    qrels = RunSpec.from_argv(["run", "d", "--qrels-splits", "--val-frac", "0.85"])
    assert qrels.split.val_frac == 0.85  # test_frac plays no part in this mode


def test_legacy_flags_map_onto_the_spec():
    spec = RunSpec.from_argv(["run", "d", "--gamma", "0.3", "--gamma-n", "0.2"])
    assert spec.method("nudge-m").gamma == GammaSpec("fixed", value=0.3)
    assert spec.method("nudge-n").gamma == GammaSpec("fixed", value=0.2)
    grid = RunSpec.from_argv(["run", "d", "--gamma-grid", "0:0.2:0.05"])
    assert grid.method("nudge-n").gamma.mode == "range" and grid.method("nudge-m").gamma.mode == "auto"
    assert RunSpec.from_argv(["run", "d"]).names == registry.default_names()


@pytest.mark.parametrize("argv, match", [
    (["--gamma-n", "5"], r"--gamma-n: γ must be in \[0, 4\]"),
    (["--gamma", "5"], r"used by nudge-n; set --gamma-n separately"),
    (["--gamma-m", "-1"], "--gamma-m: γ must be a finite number >= 0"),
    (["--gamma-m", "1e308"], r"--gamma-m: γ must be in \[0, 1000\]"),
    (["--gamma-n", "0.3:0.1:0.01"], "runs from 0.3 down to 0.1"),
    (["--gamma-n", "0:0.1:0.5"], "step 0.5 is larger than the range"),
    (["--gamma-n", "0:0.1:0"], "step must be > 0"),
    (["--gamma-n", f"0:4:{4 / (MAX_GRID + 5)}"], f"more than {MAX_GRID}"),
    (["--gamma-m", "0_1"], "expected a finite decimal number"),
    (["--gamma-m", "nan"], "expected a finite decimal number"),
    (["--val-k", "0"], r"--val-k: must be an integer in \[1, 1000\]"),
    (["--val-k", "1000000000000"], r"--val-k: must be an integer in \[1, 1000\]"),
    (["--methods", "nudge-m", "--gamma-grid", "0:9:1"], r"--gamma-grid: γ must be in \[0, 4\]"),
    (["--seed", "-1"], r"--seed: must be an integer in \[0, 2\*\*32\)"),
    (["--val-frac", "0.6", "--test-frac", "0.5"], "--val-frac \\+ --test-frac must be < 1"),
    (["--methods", "nudge-n,nudge-n"], "listed twice"),
    (["--methods", "magic"], "unknown method"),
    (["--max-file-mb", "inf"], "--max-file-mb"),
    (["--choose", "plateau-middle"], "nudge-n needs an exact search"),
    (["--methods", "adaptor", "--objective", "p@3"], "--objective: objective must be"),
    (["--gamma-bounds", "1:0"], "--gamma-bounds: the bounds must be LOW:HIGH with LOW < HIGH"),
    (["--gamma-n", "exact:0:5"], r"--gamma-n: each γ bound must be in \[0, 4\]"),
    (["--gamma-n", "exact:1"], "expected exact or exact:LOW:HIGH"),
    (["--index", "hnsw:M=1"], "--index: .*M"),
    (["--index", "lsh"], "--index: "),
    (["--tune-for-index"], "--tune-for-index: give at least one --index"),
    (["--index", "int8", "--tune-for-index", "--methods", "none,adaptor"],
     "--tune-for-index: no chosen method has a γ chosen on validation"),
    (["--index", "int8", "--tune-for-index", "--methods", "nudge-m", "--gamma-m", "2"],
     "--tune-for-index: no chosen method has a γ chosen on validation"),
])
def test_bad_settings_name_the_flag(argv, match):
    with pytest.raises(SpecError, match=match):
        RunSpec.from_argv(["run", "d", *argv])


def test_settings_checks_outside_the_cli():
    with pytest.raises(SpecError, match="adaptor has no γ"):
        MethodSettings("adaptor", 0.1)
    with pytest.raises(SpecError, match="has no setting"):
        MethodSettings("nudge-m", params={"val_k": 2})
    with pytest.raises(SpecError, match="split mode must be one of"):
        SplitSpec("random")
    assert parse_number(" 1e-3 ", "x") == 0.001


def test_make_split_is_the_one_split_dispatch():
    ds = make_dataset(n_records=200, n_queries=120)
    assert make_split(SplitSpec(seed=2), ds).to_json() == paper_split(ds.labelled_ids, 2).to_json()
    km = make_split(SplitSpec(seed=1), ds, kmeans=True)
    assert km.to_json() == kmeans_ood_split(ds, paper_split(ds.labelled_ids, 1), 1).to_json()
    obj = {"train": ds.labelled_ids[:80], "val": ds.labelled_ids[80:95], "test": ds.labelled_ids[95:]}
    assert make_split(SplitSpec("file", file="s.json"), ds, split_obj=obj).test == obj["test"]
    with pytest.raises(ValueError, match="train.tsv"):
        make_split(SplitSpec("qrels"), ds)


def test_tune_for_index_is_one_switch_in_argv_json_and_the_key():
    plain = RunSpec("d", indexes=("int8",))
    tuned = RunSpec("d", indexes=("int8",), tune_for_index=True)
    assert tuned.to_argv()[-1] == "--tune-for-index" and "--tune-for-index" not in plain.to_argv()
    assert tuned.to_json()["tune_for_index"] is True and tuned.key() != plain.key()
    old = plain.to_json()
    del old["tune_for_index"]  # results files written before the option read back as off
    assert RunSpec.from_json(old) == plain
    assert RunSpec("d", methods=(MethodSettings("nudge-m", 2.0), "nudge-n"), indexes=("int8",),
                   tune_for_index=True).tuned_names == ("nudge-n",)
    with pytest.raises(SpecError, match="--tune-for-index: must be true or false"):
        RunSpec("d", indexes=("int8",), tune_for_index="yes")
