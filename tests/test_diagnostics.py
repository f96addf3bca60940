"""Warning signs about a run (nudge_core.diagnostics): constructed cases where each flag must and
must not appear."""

from __future__ import annotations

import numpy as np
import pytest

from nudge_core import NudgeM, NudgeN, RunSpec, run_experiment
from nudge_core.diagnostics import EDGE, OFF_PEAK, UNSURE, WORSE, diagnose, searched_range
from nudge_core.runspec import GammaSpec, MethodSettings, make_split
from nudge_core.sensitivity import SweepResult
from synthetic import make_dataset

HURT = dict(seed=0, noise=0.9, n_queries=150)  # data on which NUDGE-N's automatic γ hurts


def run(ds, *methods):
    spec = RunSpec("synthetic", methods=(MethodSettings("none"), *methods))
    return run_experiment(ds, make_split(spec.split, ds), spec)


@pytest.fixture(scope="module")
def hurt():
    """NUDGE-N's automatic γ lowers test NDCG@10 on this data (checked in the test)."""
    return run(make_dataset(**HURT), MethodSettings("nudge-n"))


@pytest.fixture(scope="module")
def helped():
    """NUDGE-M at a fixed γ gains clearly on this data (checked in the test)."""
    return run(make_dataset(seed=5, noise=1.5, n_queries=300),
               MethodSettings("nudge-m", GammaSpec("fixed", value=2.0)))


def of(flags, method, kind):
    return [f for f in flags if f.method == method and f.kind == kind]


def test_a_gamma_that_lowers_test_ndcg_is_flagged_with_its_numbers(hurt):
    comp = hurt.methods["nudge-n"].comparison["ndcg@10"]
    assert comp["delta"] < 0  # the constructed case: NUDGE-N does worse than no fine-tuning
    worse = of(diagnose(hurt), "nudge-n", WORSE)
    assert len(worse) == 1 and worse[0].severity == "warning" and worse[0].part == "test"
    message = worse[0].message
    assert f"{comp['delta']:+.3f}" in message and f"p = {comp['p_value']:.3g}" in message
    assert f"{comp['ci_low']:+.3f} to {comp['ci_high']:+.3f}" in message
    assert f"γ = {hurt.methods['nudge-n'].gamma:.4g}" in message
    assert diagnose(hurt)[0].kind == WORSE  # warnings about losses come first


def test_a_clear_gain_raises_no_flag(helped):
    for comp in helped.methods["nudge-m"].comparison.values():
        assert comp["delta"] > 0 and comp["ci_low"] > 0  # the constructed case: a clear gain
    assert [f for f in diagnose(helped) if f.method == "nudge-m"] == []


def test_a_gain_whose_interval_crosses_zero_is_noted():
    result = run(make_dataset(seed=5, noise=1.5, n_queries=300),
                 MethodSettings("nudge-m", GammaSpec("fixed", value=0.5)))
    comp = result.methods["nudge-m"].comparison
    crossing = [m for m, c in comp.items() if c["delta"] > 0 and c["ci_low"] <= 0]
    assert crossing  # the constructed case
    unsure = of(diagnose(result), "nudge-m", UNSURE)
    assert len(unsure) == 1 and unsure[0].severity == "info"
    for m in crossing:
        assert m in unsure[0].message and f"{comp[m]['ci_low']:+.3f}" in unsure[0].message
    assert not of(diagnose(result), "nudge-m", WORSE)


def test_ood_losses_are_flagged_separately():
    ds = make_dataset(**HURT)
    spec = RunSpec("synthetic", methods=(MethodSettings("none"), MethodSettings("nudge-n")))
    split = make_split(spec.split, ds, kmeans=True)
    result = run_experiment(ds, split, spec)
    comp = result.methods["nudge-n"].ood_comparison
    flags = [f for f in diagnose(result) if f.part == "ood" and f.kind == WORSE]
    assert bool(flags) == any(c["delta"] < -1e-12 for c in comp.values())
    for f in flags:
        assert "out-of-distribution" in f.message


def test_gamma_at_the_top_of_the_grid_is_flagged(hurt):
    ds = make_dataset(**HURT)
    chosen = hurt.methods["nudge-n"].gamma
    assert chosen > 0
    top = run(ds, MethodSettings("nudge-n", GammaSpec("range", start=0.0, stop=chosen, step=chosen)))
    assert top.methods["nudge-n"].gamma == pytest.approx(chosen)
    edge = of(diagnose(top), "nudge-n", EDGE)
    assert len(edge) == 1 and edge[0].severity == "warning" and "largest" in edge[0].message
    assert f"[0, {chosen:.4g}]" in edge[0].message


def test_gamma_zero_at_the_bottom_says_nothing_moved():
    ds = make_dataset(**HURT)
    result = run(ds, MethodSettings("nudge-n", GammaSpec("range", start=0.0, stop=0.001, step=0.001)))
    assert result.methods["nudge-n"].gamma == 0  # the constructed case
    edge = of(diagnose(result), "nudge-n", EDGE)
    assert len(edge) == 1 and edge[0].severity == "info" and "no record was moved" in edge[0].message


def test_searched_range_reads_the_estimators_search(hurt):
    ds = make_dataset(**HURT)
    split = make_split(RunSpec("synthetic").split, ds)
    train, val = ds.queries(split.train), ds.queries(split.val)
    assert searched_range(NudgeN().fit(ds.corpus_emb, train, val)) == ("grid", 0.0, pytest.approx(0.48))
    assert searched_range(NudgeN(gammas=(0.1, 0.3)).fit(ds.corpus_emb, train, val)) == ("grid", 0.1, 0.3)
    assert searched_range(NudgeN(exact=True, gamma_bounds=(0.05, 0.7)).fit(ds.corpus_emb, train, val)) \
        == ("range", 0.05, 0.7)
    assert searched_range(NudgeM().fit(ds.corpus_emb, train, val)) == ("range", 0.0, 1000.0)
    assert searched_range(NudgeM(gamma=0.3).fit(ds.corpus_emb, train, val)) is None  # fixed: no search
    assert not of(diagnose(run(ds, MethodSettings("nudge-m", GammaSpec("fixed", value=0.0)))),
                  "nudge-m", EDGE)


def sweep_peaking_at(peak: float, method: str = "nudge-m") -> SweepResult:
    """A hand-made sweep whose mean test curve peaks at ``peak`` (0.6 there, 0.4 far away)."""
    grid = np.logspace(-3, 1, 21)
    curve = 0.6 - 0.1 * np.abs(np.log10(grid) - np.log10(peak))
    return SweepResult("ndcg@10", {method: grid}, {method: {"test": np.vstack([curve, curve])}})


def test_chosen_gamma_far_from_the_sweeps_test_peak(helped):
    chosen = helped.methods["nudge-m"].gamma  # 2.0
    far = of(diagnose(helped, sweep_peaking_at(0.01)), "nudge-m", OFF_PEAK)
    assert len(far) == 1 and far[0].severity == "warning"
    assert "γ ≈ 0.01" in far[0].message and "2 split seeds" in far[0].message
    expected_at = 0.6 - 0.1 * (np.log10(chosen) - np.log10(0.01))
    assert f"{expected_at:.3f} at the chosen γ" in far[0].message
    assert not of(diagnose(helped, sweep_peaking_at(chosen)), "nudge-m", OFF_PEAK)
    assert not of(diagnose(helped, sweep_peaking_at(chosen * 2)), "nudge-m", OFF_PEAK)  # near
    assert not of(diagnose(helped), "nudge-m", OFF_PEAK)  # no sweep, no such flag


def ood_row(method, part, delta, p, half=0.02):
    return {"method": method, "part": part, "delta": delta, "ci_low": delta - half,
            "ci_high": delta + half, "p_value": p}


@pytest.mark.parametrize("m_ood, n_ood", [(0.176, 0.150), (-0.005, -0.038)])
def test_ood_sentences_follow_the_numbers_when_the_order_flips(m_ood, n_ood):
    from nudge_core.diagnostics import ood_findings

    rows = [ood_row("nudge-m", "in-distribution", 0.2, 0.001), ood_row("nudge-m", "OOD", m_ood, 0.03),
            ood_row("nudge-n", "in-distribution", 0.1, 0.001), ood_row("nudge-n", "OOD", n_ood, 0.03)]
    text = " ".join(ood_findings(rows))
    assert f"NUDGE-M: ndcg@10 +0.200 in-distribution, {m_ood:+.3f} on OOD queries" in text
    flipped = " ".join(ood_findings([dict(r, method={"nudge-m": "nudge-n", "nudge-n": "nudge-m"}[r["method"]])
                                     for r in rows]))
    if m_ood > 0:  # both gain: NUDGE-M most
        assert "NUDGE-M gains most (+0.176) and NUDGE-N gains least (+0.150)" in text
        assert "NUDGE-N gains most (+0.176) and NUDGE-M gains least (+0.150)" in flipped
        assert "No method does worse than no fine-tuning on the OOD queries." in text
        assert "a clear gain" in text
    else:  # both lose: NUDGE-N loses most, and the text says so with its p-value
        assert "NUDGE-M loses least (-0.005) and NUDGE-N loses most (-0.038)" in text
        assert "NUDGE-N loses least (-0.005) and NUDGE-M loses most (-0.038)" in flipped
        assert "NUDGE-N (-0.038, p = 0.03)" in text and "a clear loss" in text
        assert "within the noise" in text  # NUDGE-M's -0.005 ± 0.02 includes zero
    assert "should hold up better" not in text
