"""The Dask backend: the same shard tasks on a LocalCluster give the single-process results, also
when a worker dies in the middle of a fit (Dask re-runs its task elsewhere)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from nudge_core.data import load_dataset
from nudge_core.nudge import NudgeN
from nudge_core.splits import paper_split
from test_outofcore import assert_same, reshard, run
from synthetic import make_arrays, write_dataset

distributed = pytest.importorskip("distributed", reason="dask.distributed is a core dependency")
from nudge_core.dask_backend import DaskBackend  # noqa: E402


class KillFirstShardTask(distributed.WorkerPlugin):
    """Kills the worker process the first time any worker starts a shard search (once: a marker
    file remembers it, and the worker the nanny restarts gets the plugin again)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and "search_shard" in str(key) and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask")
    write_dataset(root / "one", *make_arrays(n_records=240, dim=12, n_queries=120, seed=2, noise=0.3))
    reshard(root / "one", root / "sharded", [70, 1, 60, 109])
    return root


def test_local_cluster_with_two_workers_gives_identical_results(cluster, data):
    with distributed.Client(cluster) as client:
        with distributed.get_task_stream(client) as stream:
            ooc = run(data / "sharded", backend=DaskBackend(client=client))
        workers = {t["worker"] for t in stream.data if "search_shard" in str(t["key"])}
        assert len(workers) == 2  # the shard searches really ran on both workers
    assert_same(run(data / "one"), ooc)


def test_progress_counts_each_finished_task_and_results_keep_their_order(cluster):
    seen = []
    with distributed.Client(cluster) as client:
        out = DaskBackend(client=client).map(pow, [5, 2, 3, 4], broadcast={"exp": 2},
                                             progress=lambda done, total: seen.append((done, total)))
    assert out == [25, 4, 9, 16]
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_a_worker_killed_mid_fit_is_retried_and_the_result_is_identical(cluster, data, tmp_path):
    ds = load_dataset(data / "sharded")
    split = paper_split(ds.labelled_ids, seed=0)
    train, val = ds.queries(split.train), ds.queries(split.val)
    want = NudgeN(gamma=0.1).fit(np.asarray(ds.corpus_emb), train, val)  # a γ that moves rows
    marker = tmp_path / "killed"
    with distributed.Client(cluster) as client:
        client.register_plugin(KillFirstShardTask(str(marker)), name="kill-once")
        try:  # the fit's first shard task (its validation search) kills its worker
            got = NudgeN(gamma=0.1).fit(ds.corpus_emb, train, val,
                               normalized=ds.corpus_emb.unit_view(DaskBackend(client=client)))
        finally:
            client.unregister_worker_plugin("kill-once")
    assert marker.exists()  # a worker really died during the fit
    assert got.gamma_ == want.gamma_ and len(want.moved_) > 0
    np.testing.assert_array_equal(got.moved_, want.moved_)
    np.testing.assert_allclose(np.asarray(got.embeddings_), want.embeddings_, atol=1e-7, rtol=0)
