"""The teaching playground's toy problems, checked on the engine's own fits (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

from nudge_core import registry
from nudge_core.playground import (PRESETS, angle_of, describe, fit_at, from_tables, move, positions,
                                   preset, rankings, validation_curve)

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


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("name", PRESETS)
def test_tables_round_trip_to_the_same_problem(name, dim):
    toy = preset(name, dim)
    again = from_tables(toy, *describe(toy))
    assert again.dim == dim and again.title.endswith("(edited)")
    assert np.abs(again.records - toy.records).max() < 1e-5  # angles kept to 1e-4 degrees
    for part in ("train", "val", "test"):
        assert [list(a) for a in getattr(again, part).answers] == \
            [list(a) for a in getattr(toy, part).answers]
    assert np.abs(positions(again, NUDGE_M, 0.7) - positions(toy, NUDGE_M, 0.7)).max() < 1e-4


def test_move_puts_one_point_at_the_angle():
    toy = preset("ood")
    records, queries = describe(toy)
    r2, q2 = move(records, queries, "record 1", 200.0)
    assert r2[1]["angle"] == 200.0 and r2[0] == records[0] and q2 == queries
    assert records[1]["angle"] != 200.0  # the input tables are not changed
    edited = from_tables(toy, r2, q2)
    assert angle_of(edited.records[1]) == pytest.approx(-160.0, abs=1e-4)
    r3, q3 = move(records, queries, "query 3", -10.0)
    assert q3[3]["angle"] == -10.0 and r3 == records
    assert angle_of(from_tables(toy, r3, q3).ood.emb[0]) == pytest.approx(-10.0, abs=1e-4)
    with pytest.raises(ValueError, match="no point 'record 9' to move"):
        move(records, queries, "record 9", 0.0)


def test_bad_edits_name_the_row_and_what_was_expected():
    toy = preset("ood")
    records, queries = describe(toy)
    bad = [({"record": 0, "angle": None}, None, r"record row 0: the angle must be a number"),
           (None, {"part": "train", "angle": "north", "relevant record": 0},
            r"query row 0: the angle must be a number of degrees, got 'north'"),
           (None, {"part": "dev", "angle": 1.0, "relevant record": 0}, r"query row 0: part must be one of"),
           (None, {"part": "train", "angle": 1.0, "relevant record": 5},
            r"query row 0: relevant record must be a record row, 0 to 1, got 5"),
           (None, {"part": "train", "angle": 1.0, "relevant record": None},
            r"relevant record must be a record row")]
    for rec, query, message in bad:
        r = [rec] + records[1:] if rec else records
        q = [query] + queries[1:] if query else queries
        with pytest.raises(ValueError, match=message):
            from_tables(toy, r, q)
    with pytest.raises(ValueError, match="at least one record is needed"):
        from_tables(toy, [], queries)
    with pytest.raises(ValueError, match="at least one val query is needed"):
        from_tables(toy, records, [q for q in queries if q["part"] != "val"])
    with pytest.raises(ValueError, match="at least one train query is needed"):
        from_tables(toy, records, [q for q in queries if q["part"] != "train"])
