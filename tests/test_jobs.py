"""The background job registry of the app (explorer_app/jobs.py) and the merge of a run's parts.

Jobs here are plain functions held by a threading.Event (no sleeps), so every outcome is forced
rather than timed."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from explorer_app import jobs
from nudge_core import registry, run_experiment
from nudge_core.runspec import RunSpec
from nudge_core.splits import paper_split
from nudge_core.text_embed import Cancelled
from synthetic import Flipped, make_dataset

WAIT = 60  # seconds a test waits for a worker at most (never reached when things work)


@pytest.fixture()
def reg():
    r = jobs.JobRegistry(workers=1, keep=3)
    yield r
    for job in r.running():
        job.cancel()
        job.wait(WAIT)


def stepper(steps: int, gate: threading.Event, calls: list):
    """work(progress): reports ``steps`` times, each after ``gate`` opens (it stays open)."""
    def work(progress):
        for i in range(steps):
            assert gate.wait(WAIT)
            calls.append(i)
            progress((i + 1) / steps, f"step {i + 1}/{steps}")
        return "result"
    return work


def test_a_job_runs_once_per_key_and_reports_progress(reg):
    gate, calls = threading.Event(), []
    job = reg.submit("k", stepper(3, gate, calls), "slow", watcher="a")
    again = reg.submit("k", stepper(3, gate, []), "slow", watcher="b")  # same content: same job
    assert again is job and job.watchers == {"a", "b"}
    assert job.state == jobs.RUNNING and job.result is None
    other = reg.submit("other", lambda progress: "x", "slow")  # different content: another job
    assert other is not job
    gate.set()
    assert job.wait(WAIT) and other.wait(WAIT)
    assert job.state == jobs.DONE and job.result == "result" and calls == [0, 1, 2]
    assert job.fraction == 1.0 and other.result == "x"


def test_cancel_stops_at_the_next_progress_report_and_keeps_nothing(reg):
    gate, calls = threading.Event(), []
    job = reg.submit("k", stepper(100, gate, calls), "slow")
    job.cancel()
    gate.set()
    assert job.wait(WAIT)
    assert job.state == jobs.CANCELLED and job.result is None and job.error is None
    assert len(calls) <= 1  # the first report after the cancel raised Cancelled
    assert reg.get("k") is job  # the page still finds it (to say so and offer a rerun)
    reg.forget("k")
    assert reg.get("k") is None


def test_a_result_that_arrives_after_a_cancel_is_dropped(reg):
    gate = threading.Event()

    def deaf(progress):  # like the adaptor: no progress inside its fit
        assert gate.wait(WAIT)
        return "late"
    job = reg.submit("k", deaf, "slow")
    job.cancel()
    gate.set()
    assert job.wait(WAIT) and job.result is None and job.state == jobs.CANCELLED


def test_a_queued_job_cancelled_never_runs(reg):
    gate, calls = threading.Event(), []
    first = reg.submit("a", stepper(1, gate, []), "first")  # holds the only worker
    queued = reg.submit("b", stepper(1, threading.Event(), calls), "second")
    assert queued.queued
    queued.cancel()
    assert queued.wait(WAIT) and first.state == jobs.RUNNING  # it left the queue at once
    gate.set()
    assert first.wait(WAIT)
    assert calls == [] and queued.state == jobs.CANCELLED and queued.started is None


def test_a_failure_is_kept_for_the_page(reg):
    def broken(progress):
        raise ValueError("no texts")
    job = reg.submit("k", broken, "slow")
    assert job.wait(WAIT)
    assert job.state == jobs.FAILED and isinstance(job.error, ValueError)


def test_a_job_nobody_watches_any_more_stops(reg):
    gate, calls = threading.Event(), []
    job = reg.submit("k", stepper(50, gate, calls), "slow", watcher="a")
    reg.submit("k", stepper(50, gate, calls), "slow", watcher="b")
    reg.release("k", "a")
    assert job.state == jobs.RUNNING  # b still looks at it
    reg.release("k", "b")
    assert job.state == jobs.CANCELLED
    # forgotten too: coming back to these settings starts the run again, with no "cancelled"
    # that nobody asked for
    assert reg.get("k") is None
    again = reg.submit("k", lambda progress: "again", "slow", watcher="a")
    assert again is not job
    gate.set()
    assert job.wait(WAIT) and len(calls) <= 1
    assert again.wait(WAIT) and again.state == jobs.DONE and again.result == "again"


def test_one_sessions_cancel_does_not_stop_anothers_run(reg):
    gate, calls = threading.Event(), []
    job = reg.submit("k", stepper(3, gate, calls), "slow", watcher="a")
    reg.submit("k", stepper(3, gate, calls), "slow", watcher="b")  # same data and settings
    assert reg.cancel("k", "a") is False  # b still watches: only a lets go
    assert job.state == jobs.RUNNING and job.watchers == {"b"}
    gate.set()
    assert job.wait(WAIT) and job.state == jobs.DONE and job.result == "result"
    solo_gate = threading.Event()
    solo = reg.submit("s", stepper(50, solo_gate, []), "slow", watcher="a")
    assert reg.cancel("s", "a") is True  # the last watcher: the job itself stops
    solo_gate.set()
    assert solo.wait(WAIT) and solo.state == jobs.CANCELLED and solo.result is None
    assert reg.cancel("missing", "a") is False


def test_a_cancel_after_the_end_leaves_the_result(reg):
    """A Cancel click that lands after the job ended (or another session's) must not hide a
    finished, shared result."""
    job = reg.submit("k", lambda progress: "result", "slow", watcher="a")
    assert job.wait(WAIT) and job.state == jobs.DONE
    job.cancel()
    reg.release("k", "a")
    assert job.state == jobs.DONE and job.result == "result" and reg.get("k") is job


def test_a_fit_that_stops_by_itself_is_not_done(reg):
    def stops(progress):  # the engine raised Cancelled without this job being cancelled
        raise Cancelled("stopped inside")
    job = reg.submit("k", stops, "slow")
    assert job.wait(WAIT)
    assert job.state == jobs.CANCELLED and job.result is None


def test_finished_jobs_are_forgotten_oldest_first(reg):
    done = [reg.submit(f"k{i}", lambda progress, i=i: i, "x") for i in range(5)]
    for job in done:
        assert job.wait(WAIT)
    reg.submit("last", lambda progress: 0, "x").wait(WAIT)
    assert len(reg.jobs) <= reg.keep + 1 and "last" in reg.jobs and "k0" not in reg.jobs


# ---------------------------------------------------------------- which methods are slow
@pytest.fixture()
def slow_method():
    registry.register(registry.MethodSpec("sluggish", "sluggish", "#000000", Flipped, "queries",
                                          "cos", "none", default=False, slow=True))
    yield "sluggish"
    registry.unregister("sluggish")


def test_split_spec_follows_the_registry(slow_method):
    spec = RunSpec("x", methods=("nudge-n", slow_method, "adaptor"))
    fast, slow = jobs.split_spec(spec)
    assert fast.names == ("none", "nudge-n")
    assert slow.names == ("none", slow_method, "adaptor")
    assert jobs.split_spec(RunSpec("x", methods=("nudge-m",)))[1] is None


def test_merged_parts_equal_one_run_of_everything(slow_method):
    ds = make_dataset(n_records=200, n_queries=120, seed=5)
    split = paper_split(ds.labelled_ids, seed=1)
    spec = RunSpec("x", methods=(slow_method, "nudge-n", "adaptor", "nudge-m"))
    whole = run_experiment(ds, split, spec)
    fast, slow = jobs.split_spec(spec)
    merged = jobs.merge_results(run_experiment(ds, split, fast), run_experiment(ds, split, slow), spec)
    assert list(merged.methods) == list(whole.methods) == list(spec.names)
    assert merged.spec == spec
    for name, res in whole.methods.items():
        got = merged.methods[name]
        assert got.metrics == pytest.approx(res.metrics, abs=1e-12), name
        assert got.comparison == res.comparison, name  # each is against the same reference
    a, b = merged.to_json(per_query=False), whole.to_json(per_query=False)
    for name in spec.names:
        a["methods"][name].pop("fit_seconds"), b["methods"][name].pop("fit_seconds")
        assert a["methods"][name] == b["methods"][name]


def test_parts_of_different_runs_are_not_merged():
    ds = make_dataset(n_records=200, n_queries=120, seed=5)
    spec = RunSpec("x", methods=("nudge-n", "adaptor"))
    fast, slow = jobs.split_spec(spec)
    a = run_experiment(ds, paper_split(ds.labelled_ids, seed=1), fast)
    b = run_experiment(ds, paper_split(ds.labelled_ids, seed=2), slow)
    with pytest.raises(ValueError, match="different splits"):
        jobs.merge_results(a, b, spec)


def test_progress_after_cancel_raises_the_engines_cancelled():
    job = jobs.Job("k", "label")
    job.progress(0.5, "half")
    assert (job.fraction, job.message) == (0.5, "half")
    job.cancel()
    with pytest.raises(Cancelled, match="label: cancelled"):
        job.progress(0.6, "more")


def test_a_model_fine_tune_stops_inside_its_fit_when_its_job_is_cancelled(tmp_path, monkeypatch):
    """The engine's model fine-tuning reports per batch and per encoding chunk: the job's
    progress raises Cancelled there, and nothing is written anywhere (no cache)."""
    from optional import needs

    needs("torch")
    needs("sentence_transformers")
    from test_model_ft import TRAIN, FakeFT, make_dataset as fake_dataset
    from nudge_core.splits import Split

    monkeypatch.chdir(tmp_path)
    registry.register(registry.MethodSpec("fake-ft", "fake ft", "#000000", FakeFT, "records",
                                          "cos", "hit@1", default=False, slow=True))
    reg = jobs.JobRegistry(workers=1)
    try:
        ds = fake_dataset()
        split = Split(TRAIN, ["keep0", "keep1"], ["x0", "x1"])
        seen, ready, holder = [], threading.Event(), {}

        def work(progress):
            assert ready.wait(WAIT)

            def spy(fraction, message):  # the user clicks Cancel at the first batch
                seen.append(message)
                if "batch" in message:
                    holder["job"].cancel()
                progress(fraction, message)
            return run_experiment(ds, split, RunSpec("fake", methods=("fake-ft",)), progress=spy)
        holder["job"] = job = reg.submit("ft", work, "fake ft")
        ready.set()
        assert job.wait(WAIT)
        assert job.state == jobs.CANCELLED and job.result is None and job.error is None
        assert seen[-1].startswith("fake-ft: epoch 1/1: batch")  # nothing ran after it
        assert list(tmp_path.iterdir()) == []
    finally:
        job.cancel()
        job.wait(WAIT)
        registry.unregister("fake-ft")


def test_a_held_job_waits_and_a_cancel_ends_the_hold(reg, monkeypatch):
    monkeypatch.setattr(jobs, "HOLD_SECONDS", 30.0)  # NUDGE_JOB_HOLD, as the browser tests set it
    calls = []
    job = reg.submit("h", lambda progress: calls.append(1) or "done", "slow")
    for _ in range(100):  # until the worker has started and is holding
        if job.started is not None:
            break
        job.wait(0.05)
    assert job.state == jobs.RUNNING and "NUDGE_JOB_HOLD" in job.message and calls == []
    job.cancel()
    assert job.wait(5)  # the hold ends at the cancel, not after 30 s
    assert job.state == jobs.CANCELLED and calls == []
