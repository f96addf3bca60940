"""The shard-level work of :mod:`nudge_core.outofcore` scheduled on ``dask.distributed``.

:class:`DaskBackend` has the one method a :class:`~nudge_core.outofcore.ShardedIndex` needs,
``map(fn, *iterables, broadcast=...)``: one Dask task per shard (``client.submit``), the small
shared arguments (queries, excluded rows, overlay) sent once as tasks of their own, results
gathered in shard order. Dask does the scheduling, the retries of a task that raised
(``retries``) and the re-running of tasks whose worker died (the scheduler's
``allowed-failures``); nothing here queues, pools or talks to workers itself.

Each task reads its shard by path (``np.load(..., mmap_mode="r")``), so every worker must see
the shards at the same path as the client: shared storage (NFS, a cluster file system), or a
copy of the shard folder at that path on each machine. Workers need this package and numpy
installed (the same versions as the client). Results equal the single-process backend's: the
same function runs on the same shard, and the client merges the per-shard top k the same way.
"""

from __future__ import annotations

from .errors import DataError


def _value(value):
    """The task that holds a shared argument (see :meth:`DaskBackend.map`)."""
    return value


class DaskBackend:
    """Run shard tasks on a Dask cluster: ``scheduler`` = "tcp://HOST:PORT" of a running one, or
    None for a :class:`distributed.LocalCluster` of ``n_workers`` processes (one thread each)
    started here and closed by :meth:`close`. ``retries``: re-runs of a task that raised."""

    def __init__(self, scheduler: str | None = None, n_workers: int = 2, retries: int = 2,
                 client=None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - a core dependency
            raise DataError("needs dask.distributed: pip install 'dask[distributed]'", "--backend") from None
        self.retries = retries
        self._cluster = None
        if client is not None:
            self.client = client
        elif scheduler:
            try:
                self.client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise DataError(f"cannot reach the Dask scheduler ({exc})", "--scheduler") from None
        else:
            self._cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None)
            self.client = Client(self._cluster)

    def map(self, fn, *iterables, broadcast: dict | None = None, progress=None) -> list:
        """``[fn(*args, **broadcast) for args in zip(*iterables)]``, one Dask task per ``args``;
        ``progress(done, total)`` after each task finishes (in completion order)."""
        # the shared arguments as tasks of their own (not client.scatter): Dask can recompute a
        # task whose worker died, while scattered data lost with its worker cancels every task
        # that needs it ("already forgotten"; seen when a worker was killed mid-fit)
        shared = {name: self.client.submit(_value, value, pure=False)
                  for name, value in (broadcast or {}).items()}
        futures = [self.client.submit(fn, *args, **shared, retries=self.retries, pure=False)
                   for args in zip(*iterables)]
        try:
            if progress is not None:
                from distributed import as_completed

                for done, _ in enumerate(as_completed(futures), start=1):
                    progress(done, len(futures))
            return self.client.gather(futures)
        finally:
            for f in futures + list(shared.values()):
                f.release()

    def close(self) -> None:
        """Close the client and the local cluster started here (a named scheduler stays up)."""
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> "DaskBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
