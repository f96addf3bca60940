"""Out-of-core fit and evaluation on a sharded corpus equal the in-memory engine."""

from __future__ import annotations

import numpy as np
import pytest

from nudge_core.data import load_dataset
from nudge_core.experiment import run_experiment
from nudge_core.outofcore import ShardedIndex
from nudge_core.retrieval import normalize_rows, search
from nudge_core.runspec import RunSpec, load_run
from nudge_core.shards import ShardedCorpus, write_shards
from optional import shared_dataset
from synthetic import make_arrays, write_dataset

METHODS = "none,nudge-n,nudge-m"


def reshard(folder, out, sizes):
    """Copy dataset ``folder`` to ``out`` with the corpus cut into shards of ``sizes`` rows."""
    import shutil

    shutil.copytree(folder, out)
    emb = next((out / "emb").iterdir())
    corpus = np.load(emb / "corpus.npy").astype(np.float32)  # shards are float32 (SciFact: float16)
    (emb / "corpus.npy").unlink()
    (emb / "corpus").mkdir()
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    assert bounds[-1] == len(corpus)
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        np.save(emb / "corpus" / f"shard-{i:05d}.npy", corpus[a:b])
    return out


def run(folder, *extra, backend=None, methods=METHODS):
    spec = RunSpec.from_argv([str(folder), "--methods", methods, *extra])
    ds, split, ood = load_run(spec)
    return run_experiment(ds, split, spec, ood=ood, backend=backend)


def assert_same(mem, ooc):
    assert list(mem.methods) == list(ooc.methods)
    for name, a in mem.methods.items():
        b = ooc.methods[name]
        assert a.gamma == b.gamma, name
        assert a.metrics == b.metrics, name
        np.testing.assert_array_equal(a.test_top, b.test_top)
        np.testing.assert_allclose(np.asarray(b.embeddings), a.embeddings, atol=1e-7, rtol=0)
        if hasattr(a.estimator, "moved_"):
            np.testing.assert_array_equal(a.estimator.moved_, b.estimator.moved_)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("ooc")
    write_dataset(root / "one", *make_arrays(n_records=300, dim=16, n_queries=150, seed=1, noise=0.3))
    return root


def test_uneven_shards_give_the_in_memory_results(toy):
    # a 1-row shard, and shards so small some hold no active (train/val answer) row
    folder = reshard(toy / "one", toy / "uneven", [1, 120, 3, 2, 90, 1, 83])
    mem, ooc = run(toy / "one"), run(folder)
    assert isinstance(ooc.dataset.corpus_emb, ShardedCorpus)
    rows = ooc.methods["nudge-n"].estimator.active_.rows
    counts = np.histogram(rows, bins=ooc.dataset.corpus_emb.offsets)[0]
    assert (counts == 0).any() and ooc.methods["nudge-n"].gamma > 0
    assert_same(mem, ooc)


def test_exact_ndcg_search_with_ood_split_agrees_too(toy):
    folder = reshard(toy / "one", toy / "thirds", [100, 100, 100])
    extra = ("--objective", "ndcg@10", "--gamma-n", "exact", "--choose", "plateau-middle", "--ood", "kmeans")
    mem, ooc = run(toy / "one", *extra), run(folder, *extra)
    assert_same(mem, ooc)
    for name, a in mem.methods.items():
        np.testing.assert_array_equal(a.ood_top, ooc.methods[name].ood_top)


def test_sharded_index_search_equals_the_blocked_search():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((257, 12)).astype(np.float32)
    q = rng.standard_normal((9, 12)).astype(np.float32)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_shards(x, Path(tmp) / "c", 40)
        view = ShardedIndex(corpus, normalize=True)
        unit = normalize_rows(x)
        excl = np.array([3, 40, 41, 200, 256])
        for k in (1, 7, 300):
            got = view.search(q, k, exclude=excl, excluded_scores=True)
            want = search(q, unit, k, exclude=excl, excluded_scores=True)
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)
        moved = np.array([5, 41, 100])  # overlay rows: replaced, one of them excluded
        new = rng.standard_normal((3, 12)).astype(np.float32)
        view.replace(moved, new)
        unit[moved] = new
        np.testing.assert_array_equal(view.take(np.array([41, 6, 100])), unit[[41, 6, 100]])
        got = view.search(q, 20, exclude=excl, excluded_scores=True)
        want = search(q, unit, 20, exclude=excl, excluded_scores=True)
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_allclose(got[0], want[0], atol=1e-6)
        np.testing.assert_allclose(got[2], want[2], atol=1e-6)
        out = view.write(Path(tmp) / "out")
        np.testing.assert_array_equal(np.asarray(out), unit)


def test_written_output_differs_from_the_normalised_input_only_in_moved_rows(toy, tmp_path):
    folder = toy / "uneven3"
    reshard(toy / "one", folder, [150, 150])
    res = run(folder).methods["nudge-m"]
    written = np.asarray(res.embeddings.write(tmp_path / "out"))
    unit = normalize_rows(np.asarray(load_dataset(folder).corpus_emb))
    changed = np.flatnonzero((written != unit).any(axis=1))
    np.testing.assert_array_equal(changed, res.estimator.moved_)
    assert len(changed) > 0


def test_scifact_in_uneven_shards_gives_the_in_memory_results(tmp_path):
    src = shared_dataset("scifact")
    n = len(np.load(next((src / "emb").iterdir()) / "corpus.npy", mmap_mode="r"))
    folder = reshard(src, tmp_path / "scifact", [1, 999, n - 1000 - 7, 7])
    assert_same(run(src), run(folder))


def test_cli_routes_a_large_one_file_corpus_out_of_core_with_the_same_results(toy, tmp_path,
                                                                             monkeypatch, capsys):
    import json

    from nudge_core import cli, shards

    monkeypatch.setattr(shards, "OUT_OF_CORE_MIB", 0)  # every one-file corpus counts as large
    argv = ["run", str(toy / "one"), "--methods", METHODS]
    assert cli.main([*argv, "--out", str(tmp_path / "ooc.json")]) == 0
    assert "searched out of core" in capsys.readouterr().err
    assert cli.main([*argv, "--in-memory", "--out", str(tmp_path / "mem.json")]) == 0
    assert "searched out of core" not in capsys.readouterr().err
    ooc, mem = (json.loads((tmp_path / f).read_text()) for f in ("ooc.json", "mem.json"))
    for name, m in mem["methods"].items():
        assert ooc["methods"][name]["gamma"] == m["gamma"]
        assert ooc["methods"][name]["metrics"] == m["metrics"]
        assert ooc["methods"][name]["per_query"] == m["per_query"]


def test_scheduler_without_the_dask_backend_is_refused(toy, capsys):
    from nudge_core.cli import main

    assert main(["run", str(toy / "one"), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "--scheduler needs --backend dask" in capsys.readouterr().err


def test_row_slices_of_the_view_equal_the_in_memory_rows(toy, tmp_path):
    corpus = np.load(next((toy / "one" / "emb").iterdir()) / "corpus.npy")
    view = write_shards(corpus, tmp_path / "s", rows=70).unit_view()
    view.replace(np.array([3, 69, 70, 299]), np.ones((4, corpus.shape[1]), np.float32))
    expect = normalize_rows(corpus)
    expect[[3, 69, 70, 299]] = 1
    for a, b in ((0, 300), (65, 141), (69, 70), (299, 300), (10, 10)):
        np.testing.assert_array_equal(view[a:b], expect[a:b])
    np.testing.assert_array_equal(view[5:200:7], expect[5:200:7])


def test_progress_is_reported_per_shard_and_cleared_after_the_run(toy, tmp_path):
    folder = reshard(toy / "one", tmp_path / "four", [70, 70, 70, 90])
    seen = []
    spec = RunSpec.from_argv([str(folder), "--methods", METHODS])
    ds, split, ood = load_run(spec)
    result = run_experiment(ds, split, spec, ood=ood, progress=lambda f, m: seen.append((f, m)))
    shard_lines = [m for _, m in seen if ": shard " in m]
    assert {f"fitting nudge-n: shard {i} of 4" for i in range(1, 5)} <= set(shard_lines)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)  # a shard line repeats its stage's fraction
    assert all(getattr(r.embeddings, "on_shard", None) is None for r in result.methods.values())


def test_why_moved_and_local_view_on_a_sharded_corpus_equal_the_in_memory_ones(toy, tmp_path):
    from nudge_core.faithfulness import local_view
    from nudge_core.projection import rank_of, why_moved

    folder = reshard(toy / "one", tmp_path / "four", [70, 70, 70, 90])
    mem, ooc = run(toy / "one", "--gamma", "0.2"), run(folder, "--gamma", "0.2")
    train = mem.dataset.queries(mem.split.train)
    est = mem.methods["nudge-n"].estimator
    for row in est.moved_[:5]:
        pairs = []
        for res in (mem, ooc):
            before, after = res.methods["none"].embeddings, res.methods["nudge-n"].embeddings
            pairs.append((why_moved(int(row), before, after, train),
                          local_view(int(row), before, after, train, k=6)))
        (wm, lm), (wo, lo) = pairs
        np.testing.assert_array_equal(wm.rank_after, wo.rank_after)
        np.testing.assert_array_equal(wm.rank_before, wo.rank_before)
        np.testing.assert_array_equal(lm.after_rows, lo.after_rows)
        np.testing.assert_array_equal(lm.before_rows, lo.before_rows)
    # blocked ranks equal one product over all rows, whatever the block size
    q = train.emb[:9]
    vecs = np.asarray(mem.methods["nudge-n"].embeddings)
    for row in (0, 64, 299):
        scores = q @ vecs.T
        full = 1 + (scores > scores[:, row:row + 1]).sum(axis=1)
        for block in (7, 64, 1000):
            np.testing.assert_array_equal(rank_of(row, q, vecs, block_rows=block), full)


def test_one_shared_pass_answers_each_views_search_as_its_own_pass(toy, tmp_path):
    from nudge_core.outofcore import share_scan

    corpus = np.load(next((toy / "one" / "emb").iterdir()) / "corpus.npy")
    base = write_shards(corpus, tmp_path / "s", rows=70).unit_view()
    rng = np.random.default_rng(0)
    views = [base.copy() for _ in range(3)]
    views[1].replace(np.array([3, 71, 140]), rng.standard_normal((3, corpus.shape[1])).astype(np.float32))
    views[2].replace(np.array([71, 299]), rng.standard_normal((2, corpus.shape[1])).astype(np.float32))
    queries = rng.standard_normal((25, corpus.shape[1])).astype(np.float32)
    own = [v.search(queries, 12) for v in views]
    calls = []
    for v in views:
        v.on_shard = lambda done, total: calls.append(done)
    share_scan(views, queries, 40)
    assert len(calls) == 5  # one pass: 5 shards
    for v, (scores, rows) in zip(views, own):
        got = v.search(queries, 12)
        np.testing.assert_array_equal(got[1], rows)
        np.testing.assert_array_equal(got[0], scores)
    assert len(calls) == 5  # answered from the shared pass, no shard read again
    other = queries[::-1].copy()  # other queries: the view searches its shards itself
    np.testing.assert_array_equal(views[1].search(other, 5)[1], search(other, np.asarray(views[1]), 5)[1])
    assert len(calls) == 10


def test_a_shared_pass_is_used_only_by_views_of_its_own_corpus(toy, tmp_path):
    from nudge_core.outofcore import share_scan

    corpus = np.load(next((toy / "one" / "emb").iterdir()) / "corpus.npy")
    shards = write_shards(corpus, tmp_path / "s", rows=70)
    unit, raw = shards.unit_view(), ShardedIndex(shards, normalize=False)
    with pytest.raises(ValueError, match="views of one corpus"):
        share_scan([unit, raw], corpus[:4], 5)
    queries = corpus[:4] * 3
    share_scan([unit], queries, 5)
    raw.scan = unit.scan  # handed to a view of other vectors: it searches its own shards
    np.testing.assert_array_equal(raw.search(queries, 5)[1], search(queries, corpus, 5)[1])
    with pytest.raises(TypeError, match="unit_view"):
        normalize_rows(shards)  # never a whole in-memory copy of a sharded corpus


def test_an_in_memory_corpus_over_the_limit_stays_with_a_note_saying_how_to_shard_it(toy, tmp_path):
    from nudge_core.shards import route_out_of_core

    src = next((toy / "one" / "emb").iterdir()) / "corpus.npy"
    folder = tmp_path / "f16"
    import shutil
    shutil.copytree(toy / "one", folder)
    np.save(next((folder / "emb").iterdir()) / "corpus.npy", np.load(src).astype(np.float16))
    ds = load_dataset(folder)
    note = route_out_of_core(ds, limit_mib=0)
    assert isinstance(ds.corpus_emb, np.ndarray) and "held in memory" in note and "shard" in note
    one = load_dataset(toy / "one")
    assert "searched out of core" in route_out_of_core(one, limit_mib=0)
    assert route_out_of_core(load_dataset(toy / "one"), limit_mib=1e6) is None
