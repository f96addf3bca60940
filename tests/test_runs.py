"""The app's run plumbing: the results cache, the split its choices describe, and (through
AppTest) the slow methods' background jobs, the text-extra hints and the γ sliders of the
Fine-tune page."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app_support import env, goto, new_app, toy  # noqa: F401 (fixtures)
from explorer_app import jobs, runs
from explorer_app.figures import gamma_axis
from explorer_app.session import DEFAULT_SPLIT
from nudge_core import kmeans_ood_split, paper_split, registry
from nudge_core.estimator import FineTuner, unit_records
from nudge_core.index import ExactIndex
from synthetic import make_arrays, make_dataset, write_dataset


def test_cache_keeps_the_most_recently_used():
    cache, calls = runs._Cache(2), []

    def compute(value):
        calls.append(value)
        return value

    assert cache.get("a", lambda: compute(1)) == 1
    assert cache.get("b", lambda: compute(2)) == 2
    assert cache.get("a", lambda: compute(9)) == 1  # a hit: not recomputed, now most recent
    cache.get("c", lambda: compute(3))  # evicts "b", the least recently used
    assert list(cache.items) == ["a", "c"] and calls == [1, 2, 3]


def test_make_split_follows_the_data_pages_choices():
    ds = make_dataset(n_records=120, n_queries=80)
    split = runs.make_split(dict(DEFAULT_SPLIT, seed=3), ds)
    assert split.test == paper_split(ds.labelled_ids, seed=3, val_frac=0.1, test_frac=0.2).test
    with_ood = runs.make_split(dict(DEFAULT_SPLIT, seed=3, ood="kmeans"), ds)
    assert with_ood.ood == kmeans_ood_split(ds, split, seed=3).ood and with_ood.ood


# ---------------------------------------------------------------- background runs on the pages
GATE = threading.Event()
STARTED: list[int] = []  # one entry per fit begun (the test counts how many jobs really ran)


class Gated(FineTuner):
    """A slow method whose fit waits until the test opens ``GATE`` (no sleeps, no timing)."""

    def __init__(self, strength: int = 1) -> None:
        self.strength = strength

    def fit(self, records, train, val, *, normalized=None):
        STARTED.append(len(records))
        assert GATE.wait(120), "the test never opened the gate"
        self.index_ = ExactIndex(unit_records(records, normalized))
        self.fit_seconds_ = 0.0
        return self

    def transform_queries(self, queries):
        return -np.asarray(queries, np.float32)  # a different ranking from no fine-tuning


@pytest.fixture()
def gated(monkeypatch):
    GATE.clear()
    STARTED.clear()
    runs.MERGED.items.clear()  # each test sees only its own runs merged
    registry.register(registry.MethodSpec("gated", "gated method", "#000000", Gated, "queries",
                                          "cos", "none", default=False, slow=True))
    monkeypatch.setattr(runs, "GRACE_SECONDS", 0.0)  # show the fast part at once
    yield "gated"
    GATE.set()
    for job in list(jobs.JOBS.jobs.values()):
        job.cancel()
        job.wait(120)
    jobs.JOBS.jobs.clear()
    registry.unregister("gated")


def fit_with(at, methods):
    at.multiselect[0].set_value(methods)
    at.button[0].click().run()  # the form's submit button
    assert not at.exception, [e.value for e in at.exception]
    return at


def table(at):
    return at.dataframe[0].value.set_index("method")


def running_note(at) -> bool:
    return any("still running" in m.value for m in at.markdown)


def the_job(at):
    return jobs.JOBS.get(at.session_state["job_key"])


def test_nudge_numbers_show_while_the_slow_method_runs_and_merge_when_done(gated):
    at = new_app()
    goto(at, "pages/finetune.py")
    fit_with(at, ["nudge-n", gated])
    rows = table(at)
    assert rows.loc["NUDGE-N", "test NDCG@10"] > 0  # NUDGE's numbers, before the slow one ends
    assert "gated method (not done)" in rows.index and "gated method" not in rows.index
    assert running_note(at) and at.button(key="job_cancel")
    job = the_job(at)
    assert job.state == jobs.RUNNING and STARTED == [240]
    goto(at, "pages/results.py")  # another page: the partial run, with the same note
    assert running_note(at) and "gated method" not in set(at.dataframe[0].value["method"])
    GATE.set()
    assert job.wait(120)
    goto(at, "pages/finetune.py")
    rows = table(at)
    assert "gated method" in rows.index and not running_note(at)
    merged = runs.MERGED.items[next(reversed(runs.MERGED.items))]
    assert list(merged.methods) == ["none", "nudge-n", gated]
    assert merged.methods[gated].comparison["ndcg@10"]["delta"] < 0  # negated queries lose
    goto(at, "pages/results.py")
    assert "gated method" in set(at.dataframe[0].value["method"])


def test_cancel_stops_the_job_and_nothing_is_cached(gated):
    at = new_app()
    goto(at, "pages/finetune.py")
    fit_with(at, ["nudge-n", gated])
    job = the_job(at)
    at.button(key="job_cancel").click().run()
    assert not at.exception
    assert job.state == jobs.CANCELLED
    assert any("cancelled" in i.value for i in at.info)
    GATE.set()  # the fit ends after the cancel: its result is dropped
    assert job.wait(120) and job.result is None
    at.run()
    assert "gated method" not in table(at).index and not running_note(at)
    assert all(gated not in r.methods for r in runs.MERGED.items.values())
    at.button(key="job_again").click().run()  # the user asks for it again: a fresh job
    again = the_job(at)
    assert again is not job and again.wait(120) and len(STARTED) == 2
    at.run()
    assert "gated method" in table(at).index


def test_sessions_share_a_job_only_for_the_same_data(gated, tmp_path, monkeypatch):
    first = new_app()
    goto(first, "pages/finetune.py")
    fit_with(first, ["nudge-n", gated])
    second = new_app()  # another browser (or a reload): same data and settings
    goto(second, "pages/finetune.py")
    fit_with(second, ["nudge-n", gated])
    assert the_job(second) is the_job(first) and len(STARTED) == 1
    assert running_note(second)
    other = tmp_path / "other"  # a third session on different data gets its own job
    write_dataset(other, *make_arrays(n_records=200, n_queries=150, seed=8, noise=0.5))
    monkeypatch.setenv("NUDGE_EXAMPLE", str(other))
    third = new_app()
    goto(third, "pages/finetune.py")
    fit_with(third, ["nudge-n", gated])
    assert the_job(third) is not the_job(first) and sorted(STARTED) == [200, 240]


def test_model_fine_tuning_says_how_to_enable_it_before_fitting(monkeypatch):
    monkeypatch.setattr(runs, "missing_text_modules", lambda: ("torch", "peft"))
    at = new_app()
    goto(at, "pages/finetune.py")
    hints = [c.value for c in at.caption if 'pip install -e ".[text]"' in c.value]
    assert len(hints) == len([n for n in registry.names()
                              if registry.get(n).estimator.needs_dataset])
    assert "torch==2.13.0" in hints[0]
    before = at.session_state.settings_cfg
    name = [n for n in registry.names() if registry.get(n).estimator.needs_dataset][0]
    fit_with(at, ["nudge-n", name])
    assert any("cannot run here" in e.value for e in at.error)
    assert at.session_state.settings_cfg == before  # nothing was started with it


def test_model_fine_tuning_on_data_without_texts_is_explained_before_fitting(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "missing_text_modules", lambda: ())
    folder = tmp_path / "bare"
    write_dataset(folder, *make_arrays(n_records=200, n_queries=150, seed=8, noise=0.5), texts=False)
    monkeypatch.setenv("NUDGE_EXAMPLE", str(folder))
    at = new_app()
    goto(at, "pages/finetune.py")
    assert any("has embeddings only" in c.value for c in at.caption)
    name = [n for n in registry.names() if registry.get(n).estimator.needs_dataset][0]
    fit_with(at, ["nudge-n", name])
    assert any("cannot run here" in e.value for e in at.error)
    # chosen earlier on data with texts, then this data loaded: skipped with the reason, no failure
    at.session_state.settings_cfg = dict(at.session_state.settings_cfg, methods=["nudge-n", name])
    at.run()
    assert any("Not run" in w.value and "embeddings only" in w.value for w in at.warning)
    assert not at.error and "NUDGE-N" in table(at).index


def test_gamma_sliders_span_the_charts_axis_and_return_to_the_chosen_gamma():
    at = new_app()
    goto(at, "pages/finetune.py")
    result = runs.EXPERIMENTS.items[next(reversed(runs.EXPERIMENTS.items))]
    for m in ("nudge-m", "nudge-n"):
        res = result.methods[m]
        slider = at.slider(key=f"slider_{m}")
        top = gamma_axis(res.estimator.curve_gammas_, res.gamma)[1]
        assert top - slider.step <= slider.max <= max(top, res.gamma)  # not the whole range
        assert slider.value == res.gamma
        slider.set_value(slider.max).run()
        assert at.slider(key=f"slider_{m}").value != res.gamma
        at.button(key=f"back_{m}").click().run()
        assert at.slider(key=f"slider_{m}").value == res.gamma  # exactly, not a notch near it
