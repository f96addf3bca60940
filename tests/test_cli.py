"""The command line and the experiment runner end to end, and the JSON schema they write."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from nudge_core.cli import main
from nudge_core.data import load_dataset
from nudge_core.experiment import run_experiment
from nudge_core.exports import reproduce_command
from nudge_core.runspec import RunSpec
from nudge_core.splits import paper_split
from synthetic import make_arrays, write_dataset


@pytest.fixture()
def folder(tmp_path):
    corpus, queries, qrels = make_arrays(n_records=250, dim=16, n_queries=160, seed=5, graded=True)
    write_dataset(tmp_path / "toy", corpus, queries, qrels)
    # a second, out-of-distribution query set over the same corpus
    c2, q2, r2 = make_arrays(n_records=250, dim=16, n_queries=30, seed=5, noise=2.0)
    ood = tmp_path / "ood"
    (ood / "emb" / "toy").mkdir(parents=True)
    (ood / "qrels").mkdir()
    np.save(ood / "emb" / "toy" / "queries.npy", q2)
    (ood / "emb" / "toy" / "query_ids.txt").write_text("".join(f"o{j}\n" for j in range(len(q2))))
    (ood / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"o{q[1:]}\t{d}\t{g}\n" for q, judged in r2.items() for d, g in judged.items()))
    return tmp_path


def test_cli_writes_schema_and_table(folder, capsys):
    out = folder / "r.json"
    code = main(["run", str(folder / "toy"), "--methods", "none,nudge-m,nudge-n,adaptor",
                 "--ood", str(folder / "ood"), "--out", str(out), "--save-embeddings",
                 str(folder / "emb_out"), "--adaptor-epochs", "5"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "nudge-n" in printed and "ndcg@10" in printed
    res = json.loads(out.read_text())
    assert {"dataset", "model", "n_records", "dim", "splits", "methods", "ood"} <= set(res)
    assert res["splits"] == {"train": 112, "val": 16, "test": 32}
    assert set(res["methods"]) == {"none", "nudge-m", "nudge-n", "adaptor"}
    for name in ("nudge-m", "nudge-n"):
        m = res["methods"][name]
        assert {"gamma", "fit_seconds", "metrics", "per_query", "gamma_curve"} <= set(m)
        assert m["gamma_curve"][0][0] == 0 and len(m["per_query"]) == 32
        assert {"ndcg@10", "recall@10", "mrr@10", "ndcg@40", "hit@1"} <= set(m["metrics"])
        assert m["compared_to_none"]["ndcg@10"]["ci_low"] <= m["compared_to_none"]["ndcg@10"]["delta"]
    assert res["ood"]["n_queries"] == 30 and "nudge-n" in res["ood"]["methods"]
    saved = np.load(folder / "emb_out" / "nudge-m" / "corpus.npy")
    assert saved.shape == (250, 16)
    assert (folder / "emb_out" / "nudge-m" / "corpus_ids.txt").read_text().split() == \
        [f"d{i}" for i in range(250)]


def test_cli_numbers_equal_python_api(folder, tmp_path):
    out = tmp_path / "r.json"
    assert main(["run", str(folder / "toy"), "--methods", "nudge-n", "--seed", "2",
                 "--out", str(out)]) == 0
    ds = load_dataset(folder / "toy")
    res = run_experiment(ds, paper_split(ds.labelled_ids, seed=2), RunSpec(methods=("nudge-n",)))
    cli = json.loads(out.read_text())["methods"]["nudge-n"]
    assert cli["gamma"] == res.methods["nudge-n"].gamma
    assert cli["metrics"] == pytest.approx(res.methods["nudge-n"].metrics)


def test_fixed_gamma_and_grid_options(folder, tmp_path):
    out = tmp_path / "r.json"
    assert main(["run", str(folder / "toy"), "--methods", "nudge-m,nudge-n", "--gamma-m", "0.3",
                 "--gamma-grid", "0:0.2:0.05", "--val-k", "3", "--out", str(out)]) == 0
    m = json.loads(out.read_text())["methods"]
    assert m["nudge-m"]["gamma"] == 0.3
    assert [g for g, _ in m["nudge-n"]["gamma_curve"]] == [0, 0.05, 0.1, 0.15, 0.2]


def test_reproduce_command_reruns_the_same_spec(folder, tmp_path):
    first = tmp_path / "first.json"
    assert main(["run", str(folder / "toy"), "--methods", "nudge-n,nudge-m", "--seed", "1",
                 "--gamma-n", "0:0.2:0.05", "--gamma-m", "0.1,0.3", "--val-k", "2",
                 "--out", str(first)]) == 0
    recorded = json.loads(first.read_text())
    spec = RunSpec.from_json(recorded["run_spec"])
    assert spec.method("nudge-n").gamma.mode == "range"  # a range stays a range
    ds, split = load_dataset(folder / "toy"), None
    from nudge_core.runspec import make_split
    split = make_split(spec.split, ds)
    cmd = reproduce_command(run_experiment(ds, split, spec).spec, out=str(tmp_path / "x.json"))
    assert "0.0:0.2:0.05" in cmd and "--gamma-m 0.1,0.3" in cmd
    proc = subprocess.run([sys.executable, "-m", "nudge_core.cli", *cmd.split()[1:]],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    again = json.loads((tmp_path / "x.json").read_text())
    assert again["run_spec"] == recorded["run_spec"]
    for name in ("nudge-m", "nudge-n"):
        assert again["methods"][name]["gamma"] == recorded["methods"][name]["gamma"]
        assert again["methods"][name]["metrics"] == recorded["methods"][name]["metrics"]


def test_kmeans_ood_protocol(folder, tmp_path):
    out = tmp_path / "r.json"
    assert main(["run", str(folder / "toy"), "--methods", "nudge-m,nudge-n", "--ood", "kmeans",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["ood"]["source"] == "kmeans"
    assert res["ood"]["n_queries"] + res["splits"]["test"] == 32


def test_bad_input_is_one_line_without_traceback(tmp_path, capsys):
    code = main(["run", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_on_scifact_reproduces_reference(scifact_path, tmp_path):
    out = tmp_path / "r.json"
    assert main(["run", str(scifact_path), "--methods", "nudge-m,nudge-n", "--out", str(out)]) == 0
    m = json.loads(out.read_text())["methods"]
    assert m["none"]["metrics"]["ndcg@10"] == pytest.approx(0.6123, abs=0.002)
    assert m["nudge-m"]["metrics"]["ndcg@10"] == pytest.approx(0.7794, abs=0.002)
    assert m["nudge-n"]["metrics"]["ndcg@10"] == pytest.approx(0.8159, abs=0.002)


def test_ood_query_set_from_a_zip(folder, tmp_path):
    from synthetic import zip_folder

    archive = tmp_path / "ood.zip"
    archive.write_bytes(zip_folder(folder / "ood", root="ood"))
    out = tmp_path / "r.json"
    assert main(["run", str(folder / "toy"), "--methods", "nudge-n", "--ood", str(archive),
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["ood"]["n_queries"] == 30 and res["ood"]["source"] == str(archive)


#: The CLI stopped while it extracts a zip. Ctrl-C as typed in a terminal: a shell that runs a job
#: in the background (``cmd &``, as a CI script may) starts it with SIGINT ignored, so the child
#: puts Python's own handler back first.
STOPPABLE = """
import signal, sys, time, pathlib
signal.signal(signal.SIGINT, signal.default_int_handler)
import nudge_core.data as data
original = data.dataset_root
def slow_root(path, *a):
    pathlib.Path(sys.argv[1]).write_text("extracted")
    time.sleep(60)
    return original(path, *a)
data.dataset_root = slow_root
from nudge_core.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("sig, code, word", [(2, 130, "interrupted"), (15, 143, "terminated")])
def test_ctrl_c_and_sigterm_remove_the_extraction_folder(folder, tmp_path, sig, code, word):
    """Stopped while a zip is extracted: one error line, no traceback, no folder left behind."""
    import os
    import signal
    import time
    from synthetic import zip_folder

    archive = tmp_path / "toy.zip"
    archive.write_bytes(zip_folder(folder / "toy"))
    scratch, ready = tmp_path / "scratch", tmp_path / "ready"
    scratch.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", STOPPABLE, str(ready), "run", str(archive)],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(scratch)})
    deadline = time.time() + 60
    while not ready.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert ready.exists(), proc.communicate()
    assert list(scratch.iterdir())  # the extraction folder exists while it runs
    proc.send_signal(signal.Signals(sig))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.strip().startswith(f"error: {word}") and "Traceback" not in err, err
    assert list(scratch.iterdir()) == []


def test_out_must_be_a_regular_file(folder, capsys):
    assert main(["run", str(folder / "toy"), "--methods", "nudge-n", "--out", "/dev/full"]) == 2
    err = capsys.readouterr().err
    assert "--out: /dev/full is not a regular file" in err and len(err.strip().splitlines()) == 1


def test_a_failed_write_names_the_flag_and_the_file(folder, tmp_path, capsys, monkeypatch):
    from pathlib import Path

    def full(self, *a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "r.json"
    assert main(["run", str(folder / "toy"), "--methods", "nudge-n", "--out", str(out)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress lines
    assert last == f"error: --out: could not write {out}: No space left on device"


def test_serving_indexes_land_in_the_json(folder, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["run", str(folder / "toy"), "--methods", "nudge-m,nudge-n", "--index", "int8",
                 "--index", "truncate:dim=8", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert list(res["serving"]) == ["int8", "truncate:dim=8"]
    assert res["run_spec"]["indexes"] == ["int8", "truncate:dim=8"]
    entry = res["serving"]["truncate:dim=8"]
    assert set(entry["methods"]) == {"none", "nudge-m", "nudge-n"} and entry["bytes_per_record"] > 0
    assert "gain kept" in capsys.readouterr().out


def test_impossible_index_refused_before_fitting(folder, tmp_path, capsys, monkeypatch):
    import nudge_core.cli as cli_module

    monkeypatch.setattr(cli_module, "run_experiment", lambda *a, **k: pytest.fail("fitted"))
    assert main(["run", str(folder / "toy"), "--index", "truncate:dim=64"]) == 2
    assert "--index: index spec 'truncate:dim=64'" in capsys.readouterr().err
