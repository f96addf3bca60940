"""Malformed datasets, split files and command lines: each one must be refused with a clear error.

Every case starts from a tiny valid dataset written into ``tmp_path`` and breaks one thing. From the
Python API the error is a :class:`DataError` naming the file (and the line or row where there is
one) and what was expected; from the CLI ``main`` returns 2 and prints exactly one ``error:`` line.
Nothing may be executed (pickles stay unpickled, no method is fitted) and nothing may be written
outside the paths the caller named. Some variants are valid and must be accepted (CRLF, BOM,
float16, Fortran order, zips with a top folder...). The harness is ``bad_input.py``; the case tables
are ``bad_input_cases.py`` and ``bad_input_limits.py`` (caps, JSON limits, grades, degenerate data).
"""

from __future__ import annotations

import json
import re
import pickle
from pathlib import Path

import numpy as np
import pytest

from nudge_core import cli
from nudge_core.data import Dataset, dataset_from_arrays, load_dataset, load_query_set
from nudge_core.errors import DataError
from nudge_core.splits import paper_split, split_from_json, split_from_qrels_files

from bad_input import (CORPUS, CORPUS_IDS, DIM, HEADER, MARKER, MODEL, N_LAB, N_Q, N_REC, QUERIES,
                       QUERY_IDS, Bad, Evil, Good, check_message, prepare, replace_at, snapshot,
                       with_cell)
from bad_input import sandbox  # noqa: F401  (a fixture, found by name)
from bad_input_cases import BAD_AND_GOOD
from bad_input_limits import LIMIT_CASES

CASES = BAD_AND_GOOD + LIMIT_CASES
BAD = [c for c in CASES if isinstance(c, Bad)]
GOOD = [c for c in CASES if isinstance(c, Good)]
assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"

# ----------------------------------------------------------------------------- Python API

@pytest.mark.parametrize("case", BAD, ids=lambda c: c.name)
def test_load_refuses(case, sandbox):
    target, kwargs = prepare(case, sandbox)
    before = snapshot(sandbox)
    with pytest.raises(DataError, match=re.escape(case.file or "")) as info:
        load_dataset(target, **kwargs)
    check_message(info.value, case)
    after = snapshot(sandbox)
    if "extract_dir" in kwargs:  # only the named extraction folder may have appeared
        after = {k: v for k, v in after.items() if not k.startswith("x/")}
        before = {k: v for k, v in before.items() if not k.startswith("x/")}
    assert after == before, "files were written or changed outside the output paths"
    assert not list((sandbox / "systmp").iterdir()), "temporary extraction folder left behind"
    assert not (sandbox / MARKER).exists()
    if case.post:
        case.post(sandbox)


@pytest.mark.parametrize("case", GOOD, ids=lambda c: c.name)
def test_load_accepts(case, sandbox):
    target, kwargs = prepare(case, sandbox)
    ds = load_dataset(target, **kwargs)
    assert ds.n_records == N_REC and ds.dim == case.dim and ds.query_emb.shape == (N_Q, case.dim)
    assert ds.corpus_emb.dtype == np.float32
    case.check(ds)
    assert not list((sandbox / "systmp").iterdir())


def test_evil_pickle_is_live(tmp_path):
    """Control: the payload used above really would create the marker if it were unpickled."""
    pickle.loads(pickle.dumps(Evil(tmp_path / MARKER)))
    assert (tmp_path / MARKER).exists()


ARRAY_CASES = [
    ("1-D corpus", dict(corpus_emb=CORPUS.ravel()), "corpus_emb", "2-D"),
    ("3-D queries", dict(query_emb=QUERIES[None]), "query_emb", "2-D"),
    ("list of lists with NaN", dict(corpus_emb=with_cell(CORPUS, 5, 0, np.nan).tolist()), "corpus_emb, row 5",
     "finite"),
    ("int corpus", dict(corpus_emb=np.ones((N_REC, DIM), int)), "corpus_emb", "floating"),
    ("object queries", dict(query_emb=QUERIES.astype(object)), "query_emb", "dtype"),
    ("dim mismatch", dict(query_emb=QUERIES[:, :3]), "query_emb", "dimension"),
    ("too few corpus ids", dict(corpus_ids=CORPUS_IDS[:3]), "corpus_ids", "3 ids"),
    ("duplicate query ids", dict(query_ids=replace_at(QUERY_IDS, 1, "q0")), "query_ids", "duplicate"),
    ("unknown corpus id in qrels", dict(qrels={"q0": {"nope": 1}}), "qrels", "'nope'"),
    ("unknown query id in qrels", dict(qrels={"qq": {"d0": 1}}), "qrels", "'qq'"),
    ("no positive grade", dict(qrels={"q0": {"d0": 0}}), "qrels", "positive"),
    ("fractional grade", dict(qrels={"q0": {"d0": 1.5}}), "qrels['q0']['d0']", "-1,000,000 to 1,000,000"),
    ("huge float grade", dict(qrels={"q0": {"d0": 1e308}}), "qrels['q0']['d0']", "integer"),
    ("grade past the range", dict(qrels={"q0": {"d0": 10**7}}), "qrels['q0']['d0']", "integer"),
    ("NaN grade", dict(qrels={"q1": {"d1": float("nan")}}), "qrels['q1']['d1']", "integer"),
    ("1 MB duplicate id", dict(corpus_ids=["x" * 10**6] * 2 + CORPUS_IDS[2:]), "corpus_ids",
     "1,000,000 characters"),
]


@pytest.mark.parametrize("name,override,source,word", ARRAY_CASES, ids=[c[0] for c in ARRAY_CASES])
def test_arrays_refused(name, override, source, word):
    args = dict(corpus_emb=CORPUS, query_emb=QUERIES, qrels={"q0": {"d0": 1}, "q1": {"d1": 1}},
                corpus_ids=CORPUS_IDS, query_ids=QUERY_IDS)
    args.update(override)
    with pytest.raises(DataError, match=f"^{re.escape(source)}") as info:
        dataset_from_arrays(**args)
    assert str(info.value).startswith(source) and word in str(info.value) and len(str(info.value)) < 300


# ----------------------------------------------------------------------------- splits

@pytest.fixture()
def dataset(sandbox) -> Dataset:
    return load_dataset(sandbox / "ds")


LAB = [f"q{j}" for j in range(N_LAB)]
GOOD_SPLIT = {"train": LAB[:6], "val": LAB[6:8], "test": LAB[8:]}
SPLIT_CASES = [
    ("invalid-json", '{"train": [', ("json",), 1),
    ("invalid-json-line3", '{\n"train": ["q0"],\n"val": [q1]}', ("json",), 3),
    ("trailing-comma", '{"train": ["q0"],}', ("json",), 1),
    ("empty-file", "", ("json",), 1),
    ("list", json.dumps(LAB), ("json object",), None),
    ("string", '"train"', ("json object",), None),
    ("null", "null", ("json object",), None),
    ("unknown-key", json.dumps({**GOOD_SPLIT, "dev": []}), ("unknown keys", "'dev'"), None),
    ("typo-key", json.dumps({"trian": LAB[:6], "val": LAB[6:8], "test": LAB[8:]}), ("'trian'",), None),
    ("string-value", json.dumps({**GOOD_SPLIT, "train": "q0,q1"}), ('"train"', "list"), None),
    ("dict-value", json.dumps({**GOOD_SPLIT, "val": {"q6": 1}}), ('"val"', "list"), None),
    ("float-ids", json.dumps({**GOOD_SPLIT, "test": [8.0, 9.0]}), ('"test"', "list"), None),
    ("null-id", json.dumps({**GOOD_SPLIT, "test": [None]}), ('"test"', "list"), None),
    ("nested-list", json.dumps({**GOOD_SPLIT, "train": [LAB[:6]]}), ('"train"', "list"), None),
    ("unknown-id", json.dumps({**GOOD_SPLIT, "test": ["q8", "zzz"]}), ("'zzz'", "not in the dataset"), None),
    ("unknown-int-id", json.dumps({**GOOD_SPLIT, "val": [6, 7]}), ("'6'",), None),
    ("unlabelled-id", json.dumps({**GOOD_SPLIT, "train": LAB[:6] + ["q11"]}), ("'q11'", "no positive"), None),
    ("unlabelled-in-ood", json.dumps({**GOOD_SPLIT, "ood": ["q10"]}), ("'q10'",), None),
    ("query-in-two-parts", json.dumps({**GOOD_SPLIT, "test": ["q8", "q9", "q0"]}), ("'q0'", "both"), None),
    ("query-in-test-and-ood", json.dumps({**GOOD_SPLIT, "ood": ["q9"]}), ("'q9'", "both"), None),
    ("duplicate-in-list", json.dumps({**GOOD_SPLIT, "train": LAB[:6] + ["q1"]}), ("'q1'", "twice"), None),
    ("empty-train", json.dumps({**GOOD_SPLIT, "train": []}), ("train split is empty",), None),
    ("empty-val", json.dumps({**GOOD_SPLIT, "val": []}), ("val split is empty",), None),
    ("empty-test", json.dumps({**GOOD_SPLIT, "test": []}), ("test split is empty",), None),
    ("missing-val", json.dumps({"train": LAB[:6], "test": LAB[8:]}), ("val split is empty",), None),
    ("empty-object", "{}", ("empty",), None),
    ("latin1", b'{"train": ["q\xe9"]}', ("utf-8",), None),
    ("5000-digit-id", '{"train": ["q0"],\n"val": ["q6"],\n"test": [' + "9" * 5000 + "]}", ("5,000 digits",),
     3),
    ("deep-nesting", '{"train": ["q0"],\n\n\n"val": ' + "[" * 10**5 + "]" * 10**5 + "}", ("nested",), 4),
    ("cr-only-invalid", '{"train": ["q0"],\r"val": [q6]}', ("json",), 2),  # read as text: CR = a line end
    ("1-mb-unknown-id", json.dumps({**GOOD_SPLIT, "test": ["x" * 10**6]}), ("1,000,000 characters",), None),
]


@pytest.mark.parametrize("name,content,words,line", SPLIT_CASES, ids=[c[0] for c in SPLIT_CASES])
def test_split_file_refused(name, content, words, line, dataset, sandbox):
    path = sandbox / "split.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match="split.json") as info:
        split_from_json(path, dataset)
    msg = str(info.value)
    assert "split.json" in msg and type(info.value) is DataError and len(msg) < 1000
    for word in words:
        assert word.lower() in msg.lower(), msg
    if line is not None:
        assert info.value.line == line, msg


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_split_path_refused(kind, dataset, sandbox):
    path = sandbox / "split.json"
    if kind == "folder":
        path.mkdir()
    with pytest.raises(DataError, match="split.json"):
        split_from_json(path, dataset)


def test_split_file_accepts_bom_and_int_ids(dataset, sandbox):
    path = sandbox / "split.json"
    path.write_text("\ufeff" + json.dumps(GOOD_SPLIT))
    split = split_from_json(path, dataset)
    assert split.sizes() == {"train": 6, "val": 2, "test": 2}


PAPER_CASES = [
    ("three-labelled", dict(query_ids=["q0", "q1", "q2"]), ("val split is empty",)),
    ("one-labelled", dict(query_ids=["q0"]), ("empty",)),
    ("no-labelled", dict(query_ids=[]), ("empty",)),
    ("val-zero", dict(val_frac=0.0), ("val split is empty",)),
    ("test-zero", dict(test_frac=0.0), ("test split is empty",)),
    ("negative-val", dict(val_frac=-0.1), ("ratios",)),
    ("negative-test", dict(test_frac=-0.5), ("ratios",)),
    ("sum-one", dict(val_frac=0.5, test_frac=0.5), ("sum to less than 1",)),
    ("sum-over-one", dict(val_frac=0.7, test_frac=0.6), ("sum",)),
    ("val-one", dict(val_frac=1.0, test_frac=0.0), ("ratios",)),
    ("nan-ratio", dict(val_frac=float("nan")), ("ratios",)),
    ("max-val-zero", dict(max_val=0), ("val split is empty",)),
    ("max-test-zero", dict(max_test=0), ("test split is empty",)),
    ("bad-layout", dict(layout="test-first"), ("layout",)),
]


@pytest.mark.parametrize("name,kwargs,words", PAPER_CASES, ids=[c[0] for c in PAPER_CASES])
def test_paper_split_refused(name, kwargs, words):
    args = dict(query_ids=LAB)
    args.update(kwargs)
    with pytest.raises(DataError, match="^split") as info:
        paper_split(**args)
    for word in words:
        assert word in str(info.value)
    assert str(info.value).startswith("split")


def test_qrels_split_needs_train_file(dataset):
    with pytest.raises(DataError, match="train.tsv and qrels/test.tsv"):
        split_from_qrels_files(dataset)


# ----------------------------------------------------------------------------- OOD query sets

def write_ood(folder: Path, queries: np.ndarray | None = None, ids: list[str] | None = None,
              qrels: list[str] | None = None, model: str = MODEL) -> Path:
    queries = QUERIES[:4] if queries is None else queries
    ids = [f"o{j}" for j in range(len(queries))] if ids is None else ids
    qrels = [f"o{j}\td{j}\t1" for j in range(len(ids))] if qrels is None else qrels
    (folder / "emb" / model).mkdir(parents=True)
    (folder / "qrels").mkdir()
    np.save(folder / "emb" / model / "queries.npy", queries)
    (folder / "emb" / model / "query_ids.txt").write_text("".join(i + "\n" for i in ids))
    (folder / "qrels" / "test.tsv").write_text("\n".join([HEADER] + qrels) + "\n")
    return folder


OOD_CASES = [
    ("missing-folder", lambda f: f.parent / "nowhere", "nowhere", ("no such folder",)),
    ("plain-file", lambda f: (f.parent / "ood.txt", (f.parent / "ood.txt").write_text("x"))[0], "ood.txt",
     ("not a folder",)),
    ("dim-mismatch", lambda f: write_ood(f, queries=QUERIES[:4, :5]), "queries.npy", ("dimension 5",)),
    ("unknown-corpus-id", lambda f: write_ood(f, qrels=["o0\td0\t1", "o1\tnope\t1"]), "test.tsv",
     ("'nope'",)),
    ("unknown-query-id", lambda f: write_ood(f, qrels=["o0\td0\t1", "x9\td1\t1"]), "test.tsv", ("'x9'",)),
    ("other-model", lambda f: write_ood(f, model="other"), "ood", ("'toy'", "available")),
    ("nan-query", lambda f: write_ood(f, queries=with_cell(QUERIES[:4], 2, 0, np.nan)), "queries.npy",
     ("finite",)),
    ("id-count", lambda f: write_ood(f, ids=["o0", "o1"]), "query_ids.txt", ("2 ids",)),
    ("no-qrels", lambda f: (write_ood(f), (f / "qrels" / "test.tsv").unlink())[0], "ood", ("qrels",)),
    ("deep-json", lambda f: with_texts(write_ood(f), '{"_id": "o1", "text": ' + "[" * 10**5 + "]" * 10**5
                                       + "}"), "queries.jsonl, line 2", ("nested",)),
    ("5000-digit-json", lambda f: with_texts(write_ood(f), '{"_id": ' + "1" * 5000 + "}"),
     "queries.jsonl, line 2", ("5,000 digits",)),
]


def with_texts(folder: Path, second_line: str) -> Path:
    """An OOD folder's queries.jsonl: a valid first line, then ``second_line``."""
    (folder / "queries.jsonl").write_text('{"_id": "o0", "text": "fine"}\n' + second_line + "\n")
    return folder


@pytest.mark.parametrize("name,build,file,words", OOD_CASES, ids=[c[0] for c in OOD_CASES])
def test_ood_refused(name, build, file, words, dataset, sandbox):
    path = build(sandbox / "ood")
    with pytest.raises(DataError, match=re.escape(file)) as info:
        load_query_set(path, dataset)
    assert type(info.value) is DataError and file in str(info.value)
    for word in words:
        assert word in str(info.value)


# ----------------------------------------------------------------------------- command line

@pytest.fixture()
def no_fit(monkeypatch):
    """Fail the test if the CLI gets as far as fitting anything."""
    calls = []
    monkeypatch.setattr(cli, "run_experiment", lambda *a, **k: calls.append(a) or pytest.fail("fitted"))
    return calls


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(code: int, out: str, err: str, *words: str) -> str:
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err and out == ""
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


CLI_FROM_BAD = [c for c in BAD if c.cli][::2]


@pytest.mark.parametrize("case", CLI_FROM_BAD, ids=lambda c: c.name)
def test_cli_refuses_dataset(case, sandbox, capsys, no_fit):
    target, _ = prepare(case, sandbox)
    out, saved = sandbox / "results" / "r.json", sandbox / "saved"
    before = snapshot(sandbox)
    code, stdout, err = run_cli(["run", str(target), "--methods", "none,nudge-m", "--out", str(out),
                                 "--save-embeddings", str(saved)], capsys)
    line = assert_one_error_line(code, stdout, err, *case.words)
    if case.file:
        assert case.file in line
    if case.line is not None:
        assert f"line {case.line}:" in line
    if case.row is not None:
        assert f"row {case.row}:" in line
    assert not out.exists() and not out.parent.exists() and not saved.exists()
    assert snapshot(sandbox) == before
    assert not no_fit
    if case.post:
        case.post(sandbox)


def write_split(tmp: Path, obj) -> str:
    path = tmp / "split.json"
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


#: (name, extra args (callable of tmp_path), words in the error line)
CLI_ARG_CASES = [
    ("unknown-method", lambda t: ["--methods", "none,nudge-x"], ("nudge-x",)),
    ("empty-methods", lambda t: ["--methods", ","], ("method",)),
    ("grid-words", lambda t: ["--gamma-grid", "a,b"], ("--gamma-grid",)),
    ("grid-empty", lambda t: ["--gamma-grid", ""], ("--gamma-grid",)),
    ("grid-two-parts", lambda t: ["--gamma-grid", "0:1"], ("--gamma-grid",)),
    ("grid-zero-step", lambda t: ["--gamma-grid", "0:1:0"], ("--gamma-grid",)),
    ("grid-reversed", lambda t: ["--gamma-grid", "1:0:0.1"], ("--gamma-grid",)),
    ("grid-inf", lambda t: ["--gamma-grid", "0:inf:0.1"], ("--gamma-grid",)),
    ("grid-nan", lambda t: ["--gamma-grid", "nan,0.1"], ("--gamma-grid",)),
    ("grid-huge", lambda t: ["--gamma-grid", "0:1:1e-9"], ("--gamma-grid", "10000")),
    ("grid-negative", lambda t: ["--gamma-grid=-0.1,0.1"], ("--gamma-grid", ">= 0")),
    ("grid-above-4", lambda t: ["--gamma-grid", "0:5:1"], ("--gamma-grid", "[0, 4]")),
    ("gamma-negative", lambda t: ["--gamma", "-1"], ("--gamma", ">= 0")),
    ("gamma-nan", lambda t: ["--gamma", "nan"], ("--gamma", "finite")),
    ("gamma-word", lambda t: ["--gamma", "big"], ("--gamma",)),
    ("gamma-m-negative", lambda t: ["--gamma-m", "-0.5"], ("--gamma-m",)),
    ("gamma-n-above-4", lambda t: ["--gamma-n", "4.5"], ("--gamma-n", "[0, 4]")),
    ("gamma-n-inf", lambda t: ["--gamma-n", "inf"], ("--gamma-n",)),
    ("gamma-above-4-with-nudge-n", lambda t: ["--gamma", "5", "--methods", "nudge-n"],
     ("--gamma", "nudge-n")),
    ("val-k-zero", lambda t: ["--val-k", "0"], ("--val-k", "[1, 1000]")),
    ("val-k-negative", lambda t: ["--val-k", "-3"], ("--val-k",)),
    ("val-k-float", lambda t: ["--val-k", "1.5"], ("--val-k",)),
    ("adaptor-epochs-zero", lambda t: ["--adaptor-epochs", "0"], ("--adaptor-epochs",)),
    ("max-file-mb-small", lambda t: ["--max-file-mb", "0.0001"],
     ("corpus_ids.txt", "110 bytes", "limit of 104 bytes")),
    ("max-file-mb-npy", lambda t: ["--max-file-mb", "0.00101"], ("larger than the limit", "corpus.npy")),
    ("max-file-mb-zero", lambda t: ["--max-file-mb", "0"], ("--max-file-mb", "positive")),
    ("max-file-mb-negative", lambda t: ["--max-file-mb", "-1"], ("--max-file-mb",)),
    ("ood-missing", lambda t: ["--ood", str(t / "nowhere")], ("nowhere", "no such folder")),
    ("ood-file", lambda t: ["--ood", str(write_ood(t / "o").parent / "o" / "qrels" / "test.tsv")],
     ("not a folder",)),
    ("ood-dim", lambda t: ["--ood", str(write_ood(t / "o", queries=QUERIES[:4, :3]))], ("dimension 3",)),
    ("ood-unknown-corpus", lambda t: ["--ood", str(write_ood(t / "o", qrels=["o0\tzz\t1"]))],
     ("'zz'", "line 2", "test.tsv")),
    ("splits-and-qrels", lambda t: ["--qrels-splits", "--splits", write_split(t, GOOD_SPLIT)],
     ("not allowed",)),
    ("unknown-option", lambda t: ["--gama", "0.1"], ("--gama",)),
    ("bad-layout", lambda t: ["--layout", "random"], ("--layout",)),
    ("splits-missing-file", lambda t: ["--splits", str(t / "none.json")], ("none.json",)),
    ("splits-bad-json", lambda t: ["--splits", write_split(t, "{oops")], ("split.json", "json")),
    ("splits-unknown-id", lambda t: ["--splits", write_split(t, {**GOOD_SPLIT, "test": ["q8", "zz"]})],
     ("'zz'",)),
    ("splits-overlap", lambda t: ["--splits", write_split(t, {**GOOD_SPLIT, "val": ["q0"]})], ("both",)),
    ("ratios-sum", lambda t: ["--val-frac", "0.6", "--test-frac", "0.5"], ("--val-frac + --test-frac",)),
    ("ratios-negative", lambda t: ["--val-frac", "-0.1"], ("--val-frac", "between 0 and 1")),
    ("qrels-splits-no-train", lambda t: ["--qrels-splits"], ("train.tsv",)),
    ("unknown-embeddings", lambda t: ["--embeddings", "bert"], ("'bert'", "'toy'")),
]


@pytest.mark.parametrize("name,extra,words", CLI_ARG_CASES, ids=[c[0] for c in CLI_ARG_CASES])
def test_cli_refuses_arguments(name, extra, words, sandbox, capsys, no_fit):
    out, saved = sandbox / "results" / "r.json", sandbox / "saved"
    argv = ["run", str(sandbox / "ds"), "--methods", "none,nudge-m", *extra(sandbox), "--out", str(out),
            "--save-embeddings", str(saved)]
    before = snapshot(sandbox)
    code, stdout, err = run_cli(argv, capsys)
    assert_one_error_line(code, stdout, err, *words)
    assert not out.parent.exists() and not saved.exists()
    assert snapshot(sandbox) == before
    assert not no_fit


@pytest.mark.parametrize("argv", [[], ["fly"], ["run"], ["run", "a", "b"]],
                         ids=["none", "bad-command", "no-dataset", "two-datasets"])
def test_cli_usage_errors(argv, capsys):
    code, stdout, err = run_cli(argv, capsys)
    assert_one_error_line(code, stdout, err)


def test_cli_mutually_exclusive_may_exit_2(sandbox, capsys):
    """--splits with --seed: argparse's own refusal (SystemExit 2) is acceptable too."""
    try:
        code = cli.main(["run", str(sandbox / "ds"), "--splits", "x.json", "--seed", "1"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_cli_valid_dataset_runs(sandbox, capsys):
    """Positive control for the CLI cases: the untouched dataset runs and writes its outputs."""
    out, saved = sandbox / "results" / "r.json", sandbox / "saved"
    code, stdout, err = run_cli(["run", str(sandbox / "ds"), "--methods", "none,nudge-m", "--out", str(out),
                                 "--save-embeddings", str(saved)], capsys)
    assert code == 0, err
    assert json.loads(out.read_text())["n_records"] == N_REC
    assert (saved / "nudge-m" / "corpus.npy").is_file()


def test_cli_refuses_out_equal_to_save_embeddings(sandbox, capsys, no_fit):
    target = str(sandbox / "same")
    code, stdout, err = run_cli(["run", str(sandbox / "ds"), "--out", target, "--save-embeddings",
                                 target], capsys)
    assert_one_error_line(code, stdout, err, "same path")
    assert not no_fit


@pytest.mark.parametrize("flag,kind", [("--out", "folder"), ("--save-embeddings", "file")])
def test_cli_refuses_unwritable_outputs_before_fitting(flag, kind, sandbox, capsys, no_fit):
    target = sandbox / "target"
    if kind == "folder":
        target.mkdir()
    else:
        target.write_text("x")
    before = snapshot(sandbox)
    code, stdout, err = run_cli(["run", str(sandbox / "ds"), "--methods", "none,nudge-m", flag,
                                 str(target)], capsys)
    assert_one_error_line(code, stdout, err, flag, "target")
    assert snapshot(sandbox) == before
    assert not no_fit

