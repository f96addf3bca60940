"""Background runs of the slow methods, shared by every session of the server process.

The Fine-tune page shows NUDGE's numbers within seconds; methods the registry marks ``slow``
(the adaptor: tens of seconds on a busy machine; full fine-tuning and LoRA: minutes) are fitted
by a :class:`Job` in a daemon thread, at most ``workers`` at once (a ``threading.Semaphore``; the
others wait for it), and merged in when done (:func:`merge_results`). Daemon threads, so that
stopping the server never waits for a fit in progress. Jobs live in :data:`JOBS`, keyed by the
content key of what they fit (data content + split + the slow methods' settings + OOD set, see
``runs.py``), so a page reload, another page of the same session, or another session that loaded
byte-identical data with identical settings finds the same job; different data never does.

Progress arrives through the engine's ``progress(fraction, message)`` callback (per epoch, per
batch and per re-encoding chunk for model fine-tuning). Cancel sets a flag; the next progress
call raises :class:`~nudge_core.text_embed.Cancelled` inside the fit, which unwinds the run. A
cancelled or failed job keeps no result, so nothing half-done is ever cached. (The adaptor
reports after each epoch; a method whose ``fit`` reports no progress stops at the next report of
``run_experiment``, i.e. when its fit ends; its result is then dropped.) A job that a session
leaves and no other watches is cancelled and forgotten (:meth:`JobRegistry.release`).

No streamlit here: the page side is in ``runs.py`` (submitting, watching) and
``widgets.py`` (the polling panel, the Cancel button).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import numpy as np

from nudge_core import registry
from nudge_core.experiment import ExperimentResult
from nudge_core.runspec import RunSpec
from nudge_core.text_embed import Cancelled

#: Seconds each job waits (cancellable) before its work starts; 0 unless ``NUDGE_JOB_HOLD`` is
#: set. The browser tests set it, so that a job is still running when they reload the page or
#: press Cancel however fast the machine fits the adaptor (on 2 idle cores it can finish before
#: the reload); a demo can use it to show the background machinery.
HOLD_SECONDS = float(os.environ.get("NUDGE_JOB_HOLD", "0") or 0)

#: Job states. ``cancelled`` covers both "asked to stop" and "stopped".
RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"


class Job:
    """One background computation ``work(progress)`` under ``key``.

    ``fraction`` / ``message``: the last progress report (0..1, a short phrase); ``submitted``,
    ``started``, ``finished``: ``time.monotonic()`` stamps; ``result`` (on success) or ``error``
    (the exception of a failed run); ``watchers``: tokens of the sessions looking at it (see
    :meth:`JobRegistry.release`)."""

    def __init__(self, key: str, label: str) -> None:
        self.key = key
        self.label = label
        self.fraction = 0.0
        self.message = "waiting for a worker"
        self.submitted = time.monotonic()
        self.started: float | None = None
        self.finished: float | None = None
        self.result = None
        self.error: BaseException | None = None
        self.watchers: set[str] = set()
        self._kept = False  # the result is in: a later cancel no longer drops it
        self._cancel = threading.Event()
        self._done = threading.Event()

    # -- what the worker calls --------------------------------------------------------------
    def progress(self, fraction: float, message: str) -> None:
        """The engine's progress callback: records the report, or stops the run if cancelled."""
        if self._cancel.is_set():
            raise Cancelled(f"{self.label}: cancelled")
        self.fraction, self.message = float(min(max(fraction, 0.0), 1.0)), str(message)

    def _run(self, work: Callable, slots: threading.Semaphore) -> None:
        try:
            while not slots.acquire(timeout=0.2):  # wait for a free worker, unless cancelled
                if self._cancel.is_set():
                    raise Cancelled(f"{self.label}: cancelled before it started")
            try:
                self.started = time.monotonic()
                if HOLD_SECONDS > 0:  # see HOLD_SECONDS: a visible, cancellable pause
                    self.message = f"held {HOLD_SECONDS:g} s (NUDGE_JOB_HOLD)"
                    self._cancel.wait(HOLD_SECONDS)
                if self._cancel.is_set():
                    raise Cancelled(f"{self.label}: cancelled before it started")
                result = work(self.progress)
            finally:
                slots.release()
            if self._cancel.is_set():  # finished after a cancel it could not see: drop it
                raise Cancelled(f"{self.label}: cancelled")
            self.result, self._kept = result, True
            self.fraction, self.message = 1.0, "done"
        except Cancelled:
            self.message = "cancelled"
        except Exception as exc:  # noqa: BLE001 - kept for the page to show, never raised here
            self.error = exc
        finally:
            self.finished = time.monotonic()
            self._done.set()

    # -- what the page reads ------------------------------------------------------------------
    @property
    def state(self) -> str:
        if self._kept:  # done, even if a cancel came in after the result (see :meth:`cancel`)
            return DONE
        if self._cancel.is_set():
            return CANCELLED
        if self.finished is None:
            return RUNNING
        return FAILED if self.error is not None else CANCELLED

    @property
    def stopping(self) -> bool:
        """Cancelled but the worker has not left the fit yet."""
        return self._cancel.is_set() and self.finished is None and self.started is not None

    @property
    def queued(self) -> bool:
        """Waiting for a free worker."""
        return self.started is None and not self._cancel.is_set()

    @property
    def seconds(self) -> float:
        """Seconds it has run (so far, or in all)."""
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    def cancel(self) -> None:
        """Stop at the next progress report (or never start); the result is never kept. A job
        that has finished is left as it is: a Cancel click that arrives just after the end, or
        another session's, must not turn a shared, finished result into "cancelled"."""
        if not self._done.is_set():
            self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds for the worker to finish; True when it has."""
        return self._done.wait(timeout)


class JobRegistry:
    """The process-wide jobs: at most ``workers`` run at once (the rest queue), and at most
    ``keep`` finished jobs are remembered (oldest forgotten first; running ones never)."""

    def __init__(self, workers: int = 2, keep: int = 8) -> None:
        self.keep = keep
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.slots = threading.Semaphore(workers)

    def get(self, key: str) -> Job | None:
        with self.lock:
            return self.jobs.get(key)

    def submit(self, key: str, work: Callable, label: str = "", watcher: str | None = None) -> Job:
        """The job under ``key``, started with ``work(progress)`` if there is none yet.

        A finished job (even a cancelled or failed one) is returned as it is: the page shows its
        outcome and offers to run it again (:meth:`forget` first)."""
        with self.lock:
            job = self.jobs.get(key)
            if job is None:
                job = Job(key, label)
                self.jobs[key] = job
                threading.Thread(target=job._run, args=(work, self.slots), daemon=True,
                                 name=f"nudge-job-{key[-8:]}").start()
                self._trim()
            if watcher is not None:
                job.watchers.add(watcher)
            return job

    def forget(self, key: str) -> None:
        """Drop the job under ``key`` (cancelling it if it still runs)."""
        with self.lock:
            job = self.jobs.pop(key, None)
        if job is not None and job.finished is None:
            job.cancel()

    def cancel(self, key: str, watcher: str) -> bool:
        """``watcher`` (a session) asks to cancel ``key``: the job stops only when no other session
        watches it (jobs are shared by sessions on identical data and settings, and one user's
        Cancel must not stop another's run); else only this watcher lets go. True when the job
        itself was cancelled."""
        with self.lock:
            job = self.jobs.get(key)
            if job is None:
                return False
            job.watchers.discard(watcher)
            alone = not job.watchers
        if alone:
            job.cancel()
        return alone

    def release(self, key: str, watcher: str) -> None:
        """``watcher`` (a session) no longer looks at ``key``: a job nobody watches any more is
        cancelled, so abandoned settings do not hold a worker for minutes, and forgotten, so a
        return to those settings starts it again (rather than showing a cancel nobody asked for)."""
        with self.lock:
            job = self.jobs.get(key)
            if job is None:
                return
            job.watchers.discard(watcher)
            abandoned = not job.watchers and job.finished is None
            if abandoned:
                del self.jobs[key]
        if abandoned:
            job.cancel()

    def running(self) -> list[Job]:
        with self.lock:
            return [j for j in self.jobs.values() if j.finished is None]

    def _trim(self) -> None:
        done = [k for k, j in self.jobs.items() if j.finished is not None]
        while len(self.jobs) > self.keep and done:
            self.jobs.pop(done.pop(0))


JOBS = JobRegistry(workers=int(os.environ.get("NUDGE_JOB_WORKERS", "2")))


# ---------------------------------------------------------------- which methods, and merging
def slow_names(names) -> tuple[str, ...]:
    """Of ``names``, the methods the registry marks slow (fitted in the background)."""
    return tuple(n for n in names if registry.get(n).slow)


def split_spec(spec: RunSpec) -> tuple[RunSpec, RunSpec | None]:
    """(fast part, slow part or None) of ``spec``: each with the reference method first (it is
    what comparisons are made against, and cheap); the fast part keeps every non-slow method."""
    slow = slow_names(spec.names)
    fast = spec.with_methods(*[m for m in spec.methods if m.name not in slow])
    if not slow:
        return fast, None
    return fast, spec.with_methods(*[m for m in spec.methods
                                     if m.name in slow or m.name == registry.REFERENCE])


def merge_results(fast: ExperimentResult, slow: ExperimentResult, spec: RunSpec) -> ExperimentResult:
    """One result for ``spec`` from its fast and slow parts (methods in ``spec``'s order).

    Valid because each method's comparison is with the reference method's per-query metrics,
    and both parts fit the reference on the same records, split and test set: this checks that
    they agree (ValueError otherwise). ``seconds`` is the two runs' sum."""
    ref = registry.REFERENCE
    if fast.test.ids != slow.test.ids or fast.split.train != slow.split.train:
        raise ValueError("the two parts of a run were fitted on different splits")
    for metric, values in fast.methods[ref].per_query.items():
        if not np.array_equal(values, slow.methods[ref].per_query[metric]):
            raise ValueError(f"the two parts of a run disagree on {ref}'s {metric}")
    parts = {**slow.methods, **fast.methods}
    missing = [n for n in spec.names if n not in parts]
    if missing:
        raise ValueError(f"no result for {', '.join(missing)}")
    return ExperimentResult(fast.dataset, fast.split, spec, {n: parts[n] for n in spec.names},
                            fast.test, fast.ood, fast.seconds + slow.seconds)
