"""The teaching playground's toy problems, checked on the engine's own fits (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

from nudge_core import registry
from nudge_core.playground import PRESETS, fit_at, positions, preset, rankings, validation_curve

GAMMAS = (0.0, 0.05, 0.3, 1.0, 2.5, 3.9)
NUDGE_M, NUDGE_N = "nudge-m", "nudge-n"


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("name", PRESETS)
def test_drawn_positions_are_the_engines_and_keep_their_constraint(name, dim):
    toy = preset(name, dim)
    assert toy.dim == dim and np.allclose(np.linalg.norm(toy.records, axis=1), 1, atol=1e-6)
    pulled = np.zeros(toy.dataset.n_records, bool)
    pulled[np.concatenate(toy.train.answers)] = True
    for gamma in GAMMAS:
        for method in (NUDGE_M, NUDGE_N):
            drawn = positions(toy, method, gamma)
            est = registry.get(method).build(gamma=gamma).fit(toy.records, toy.train, toy.val)
            assert np.abs(drawn - est.embeddings_).max() <= 1e-9
            shift = np.linalg.norm(drawn - toy.records, axis=1)
            assert np.all(shift[~pulled] == 0)
            if method == NUDGE_N:  # on the circle / sphere, within its cap
                assert np.allclose(np.linalg.norm(drawn, axis=1), 1, atol=1e-5)
                assert np.all(shift ** 2 <= gamma + 1e-5)
            else:  # exactly γ from where it started
                assert np.allclose(shift[pulled], gamma, atol=1e-5)


@pytest.mark.parametrize("dim", [2, 3])
def test_pulled_away_record_waits_until_gamma_above_2(dim):
    toy = preset("away", dim)
    start = toy.records[0]
    for gamma in (0.5, 1.0, 1.9, 2.0):
        assert np.array_equal(positions(toy, NUDGE_N, gamma)[0], start)
    assert np.linalg.norm(positions(toy, NUDGE_N, 2.4)[0] - start) > 1.0
    assert np.linalg.norm(positions(toy, NUDGE_M, 0.5)[0] - start) == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("dim", [2, 3])
def test_ood_query_lost_by_nudge_m_kept_by_nudge_n(dim):
    toy = preset("ood", dim)
    relevant = int(toy.ood.answers[0][0])
    lost_m = [g for g in np.linspace(0, 4, 41)
              if rankings(toy, fit_at(toy, NUDGE_M, g), toy.ood)[0, 0] != relevant]
    assert lost_m, "NUDGE-M should lose the OOD query at some γ"
    for g in lost_m:
        assert rankings(toy, fit_at(toy, NUDGE_N, g), toy.ood)[0, 0] == relevant


@pytest.mark.parametrize("dim", [2, 3])
def test_overfit_preset_validation_rises_then_falls(dim):
    toy = preset("overfit", dim)
    est = validation_curve(toy, NUDGE_N, gammas=tuple(np.linspace(0, 4, 81)))
    curve = est.curve_objective_
    peak = int(np.argmax(curve))
    assert curve[0] < curve[peak] and curve[-1] < curve[peak]
    first = rankings(toy, fit_at(toy, NUDGE_N, 0.0), toy.train)[0, 0]
    last = rankings(toy, fit_at(toy, NUDGE_N, 4.0), toy.train)[0, 0]
    assert first != 0 and last == 0  # the training query is fitted ever better


def test_lessons_and_random_presets():
    for name in PRESETS[:-1]:
        toy = preset(name)
        assert toy.explanation.count(".") >= 2 and toy.steps
        assert all(0 <= s.gamma <= 4 for s in toy.steps)
    a, b = preset("random", seed=5, n_records=30, n_queries=40), preset("random", seed=5, n_records=30,
                                                                          n_queries=40)
    assert np.array_equal(a.records, b.records) and len(a.train) == 24
    with pytest.raises(ValueError, match="preset must be one of"):
        preset("spiral")
    with pytest.raises(ValueError, match="dim must be 2 or 3"):
        preset("ood", dim=4)
    with pytest.raises(ValueError, match="random toys take"):
        preset("random", n_records=1)
