"""Every page's logic paths through streamlit's AppTest (no browser), on a small synthetic dataset.

The Data page's sources (server datasets, uploads, OOD uploads) and the error boundary are tested in
``test_app_data.py``; the shared fixtures live in ``app_support.py``.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from app_support import REPO, env, goto, new_app, errors, toy  # noqa: F401 (fixtures)
from nudge_core import cli
from synthetic import make_arrays, write_dataset

PAGES = ["pages/data.py", "pages/finetune.py", "pages/results.py", "pages/ood.py",
         "pages/movement.py", "pages/sensitivity.py", "pages/export.py", "pages/playground.py",
         "pages/serving.py", "pages/compare.py"]


def test_opens_on_the_example_and_every_page_renders():
    at = new_app()
    assert not at.exception
    assert at.title[0].value == "1 · Data"
    assert any("Loaded" in s.value for s in at.success)
    facts = at.dataframe[0].value
    assert "records any training query pulls" in set(facts["fact"])
    for page in PAGES[1:]:
        goto(at, page)
        assert not errors(at), (page, errors(at))
        assert at.markdown[0].value.count(".") >= 2  # each page opens with a short explanation


def test_results_equal_the_cli(toy, tmp_path):
    at = new_app()
    goto(at, "pages/results.py")
    table = at.dataframe[0].value.set_index("method")
    out = tmp_path / "cli.json"
    assert cli.main(["run", str(toy), "--methods", "none,adaptor,nudge-m,nudge-n", "--seed", "0",
                     "--out", str(out)]) == 0
    ref = json.loads(out.read_text())["methods"]
    labels = {"none": "no fine-tuning", "adaptor": "adaptor", "nudge-m": "NUDGE-M", "nudge-n": "NUDGE-N"}
    for method, name in labels.items():
        for metric in ("ndcg@10", "recall@5", "mrr@10", "ndcg@40", "recall@1"):
            assert table.loc[name, metric] == pytest.approx(ref[method]["metrics"][metric], abs=1e-12)
    comp = at.dataframe[1].value  # the paired comparison table (in the expander)
    row = comp[(comp["method"] == "nudge-n") & (comp["metric"] == "ndcg@10")].iloc[0]
    assert row["p_value"] == pytest.approx(ref["nudge-n"]["compared_to_none"]["ndcg@10"]["p_value"])
    assert row["wins"] == ref["nudge-n"]["compared_to_none"]["ndcg@10"]["wins"]


def test_results_query_detail_and_method_switch():
    at = new_app()
    goto(at, "pages/results.py")
    method_box = [s for s in at.selectbox if s.label == "Method"][0]
    method_box.set_value("nudge-m").run()
    assert not at.exception
    query_box = [s for s in at.selectbox if s.label == "Query"][0]
    query_box.set_value(query_box.options[1].split(":")[0]).run()
    assert not at.exception
    detail = at.dataframe[-1].value
    assert len(detail) == 10 and list(detail.columns[:3]) == ["rank", "record", "relevant"]
    assert "text" in detail.columns  # the toy dataset has record texts


def test_finetune_fixed_and_range_gamma_and_slider():
    at = new_app()
    goto(at, "pages/finetune.py")
    assert len(at.slider) == 2
    slider = at.slider(key="slider_nudge-m")
    slider.set_value(slider.max).run()
    assert not at.exception
    assert at.slider(key="slider_nudge-m").value == pytest.approx(slider.max)
    assert at.metric[0].label == "test NDCG@10" and "vs chosen γ" in at.metric[0].delta
    assert any("re-scored" in c.value for c in at.caption)
    radios = {r.label: r for r in at.radio}
    radios["NUDGE-M γ"].set_value("fixed")
    radios["NUDGE-N γ"].set_value("range")
    [n for n in at.number_input if n.label.startswith("fixed NUDGE-M")][0].set_value(0.05)
    at.button[0].click().run()  # the form's submit button
    assert not at.exception, [e.value for e in at.exception]
    rows = at.dataframe[0].value.set_index("method")
    assert rows.loc["NUDGE-M", "γ"] == pytest.approx(0.05)
    assert any(c.value.startswith("NUDGE-M: γ = 0.05, fixed in the settings (not chosen)")
               for c in at.caption)
    assert any(c.value.startswith("Validation objective: what chose") for c in at.caption)
    assert at.session_state.settings_cfg["gamma"]["nudge-n"]["mode"] == "range"
    # a new fit puts each slider back at that fit's chosen γ (it kept the old one before)
    assert at.slider(key="slider_nudge-m").value == pytest.approx(0.05)
    goto(at, "pages/results.py")


@pytest.mark.parametrize("lo, hi, step, words", [(0.3, 0.1, 0.01, "runs from 0.3 down to 0.1"),
                                                 (0.0, 0.1, 0.5, "step 0.5 is larger than the range")])
def test_finetune_refuses_a_bad_range(lo, hi, step, words):
    at = new_app()
    goto(at, "pages/finetune.py")
    before = at.session_state.settings_cfg
    {r.label: r for r in at.radio}["NUDGE-N γ"].set_value("range")
    at.number_input(key="lo_nudge-n").set_value(lo)
    at.number_input(key="hi_nudge-n").set_value(hi)
    at.number_input(key="step_nudge-n").set_value(step)
    at.button[0].click().run()
    assert any(words in e for e in errors(at)), errors(at)
    # named as on the form, and the numbers below are said to be the previous settings'
    assert any(e.startswith("NUDGE-N γ:") and "still those of the previous settings" in e
               for e in errors(at)), errors(at)
    assert at.session_state.settings_cfg == before  # nothing refitted with what was refused


def test_finetune_requires_a_method():
    at = new_app()
    goto(at, "pages/finetune.py")
    at.multiselect[0].set_value([])
    at.button[0].click().run()
    assert "Choose at least one method." in errors(at)


def test_kmeans_ood_and_sensitivity_band():
    at = new_app()
    ood_radio = [r for r in at.radio if r.label == "Out-of-distribution check"][0]
    ood_radio.set_value("kmeans").run()
    assert not at.exception
    assert "ood queries" in set(at.dataframe[0].value["fact"])
    goto(at, "pages/ood.py")
    assert len(at.get("plotly_chart")) == 1
    assert set(at.dataframe[0].value["part"]) == {"in-distribution", "OOD"}
    goto(at, "pages/sensitivity.py")
    [s for s in at.slider if s.label.startswith("Split seeds")][0].set_value(2).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2
    goto(at, "pages/export.py")
    assert "--ood kmeans" in at.code[0].value


def test_dataset_ood_folder(toy):
    at = new_app()
    radio = [r for r in at.radio if r.label == "Out-of-distribution check"][0]
    assert "bundled" in radio.options or any("ood/" in o for o in radio.options)
    radio.set_value("bundled").run()
    assert not at.exception and not errors(at)
    goto(at, "pages/ood.py")
    assert any("40 OOD queries" in c.value for c in at.caption)
    goto(at, "pages/export.py")
    assert "--ood" in at.code[0].value and "ood" in at.code[0].value.split("--ood")[1]


def test_ood_page_without_ood_explains():
    at = new_app()
    [r for r in at.radio if r.label == "Out-of-distribution check"][0].set_value("none").run()
    goto(at, "pages/ood.py")
    assert any("No OOD check" in i.value for i in at.info)


def test_split_file_upload_and_bad_split(toy):
    at = new_app()
    [r for r in at.radio if r.label == "Split"][0].set_value("file").run()
    ids = [f"q{j}" for j in range(150)]
    good = {"train": ids[:100], "val": ids[100:120], "test": ids[120:]}
    at.file_uploader(key="split_upload").set_value(("s.json", json.dumps(good).encode(),
                                                    "application/json")).run()
    assert not at.exception and not errors(at)
    facts = dict(zip(at.dataframe[0].value["fact"], at.dataframe[0].value["value"]))
    assert facts["test queries"] == "30"
    goto(at, "pages/export.py")
    assert "--splits s.json" in at.code[0].value  # named as the user uploaded it
    goto(at, "pages/data.py")
    bad = {"train": ids[:100], "val": ["nope"], "test": ids[120:]}
    at.file_uploader(key="split_upload").set_value(("bad.json", json.dumps(bad).encode(),
                                                    "application/json")).run()
    assert not at.exception
    assert any("'nope'" in e for e in errors(at))


def test_movement_query_pick():
    at = new_app()
    goto(at, "pages/movement.py")
    box = [s for s in at.selectbox if s.label == "Test query"][0]
    box.set_value(box.options[1].split(":")[0]).run()
    assert not at.exception
    assert any("moved" in c.value for c in at.caption)


def test_pages_folder_holds_only_the_apps_pages():
    from explorer_app.session import PAGES as NAVIGATION

    assert [script for script, _, _ in NAVIGATION] == PAGES
    assert sorted(str(p.relative_to(REPO)) for p in (REPO / "pages").iterdir()
                  if p.name != "__pycache__") == sorted(PAGES)
    for page in PAGES:
        text = (REPO / page).read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import) pages\b", text, re.M), page
        assert "session.boot()" in text, page  # a deep link into a fresh server reaches app.py
        assert "\nwith page_errors():" in text, page  # the page's one error boundary


def test_the_engine_imports_no_ui():
    for path in (REPO / "nudge_core").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        ui = re.search(r"^\s*(from|import) (streamlit|plotly|explorer_app)\b", text, re.M)
        assert ui is None, path


def test_a_registered_method_appears_in_the_app(extra_method):
    """One registry entry (made in this test) and no other edit: the method is offered, fitted,
    and shown on the Results page under its label; the Export page's command names it."""
    at = new_app()
    goto(at, "pages/finetune.py")
    box = at.multiselect[0]
    assert extra_method in box.options or "flipped queries" in box.options
    box.set_value(["nudge-n", extra_method])
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    goto(at, "pages/results.py")
    assert "flipped queries" in set(at.dataframe[0].value["method"])
    goto(at, "pages/export.py")
    assert any("--methods none,nudge-n,flipped" in c.value for c in at.code)


def test_slider_returns_to_the_chosen_gamma_after_leaving_the_page():
    at = new_app()
    goto(at, "pages/finetune.py")
    {r.label: r for r in at.radio}["NUDGE-M γ"].set_value("fixed")
    [n for n in at.number_input if n.label.startswith("fixed NUDGE-M")][0].set_value(0.05)
    at.button[0].click().run()
    assert at.slider(key="slider_nudge-m").value == pytest.approx(0.05)
    goto(at, "pages/results.py")
    goto(at, "pages/finetune.py")
    assert at.slider(key="slider_nudge-m").value == pytest.approx(0.05)
    assert all(m.delta.startswith("+0.0000") or m.delta.startswith("-0.0000") for m in at.metric)


def test_switching_embedding_set_in_a_folder_resplits_with_that_set(tmp_path, monkeypatch):
    """The k-means OOD split depends on the embeddings: model b must not reuse model a's split."""
    from nudge_core import kmeans_ood_split, load_dataset, paper_split
    from explorer_app import runs

    folder = tmp_path / "two"
    c, q, qr = make_arrays(n_records=240, n_queries=150, seed=3, noise=0.5)
    write_dataset(folder, c, q, qr, model="a")
    c2, q2, _ = make_arrays(n_records=240, n_queries=150, seed=9, noise=0.5, dim=8)
    write_dataset(folder, c2, q2, qr, model="b")
    monkeypatch.setenv("NUDGE_DATA_DIRS", str(tmp_path))  # the server offers what is in tmp_path
    at = new_app()
    at.radio[0].set_value("path").run()
    assert [s for s in at.selectbox if s.label == "Dataset on the server"][0].value == "two"

    def load(model):
        [s for s in at.selectbox if s.label == "Embedding set"][0].set_value(model).run()
        [b for b in at.button if b.label == "Load dataset"][0].click().run()
        assert not at.exception, [e.value for e in at.exception]
    load("a")
    [r for r in at.radio if r.label == "Out-of-distribution check"][0].set_value("kmeans").run()
    goto(at, "pages/finetune.py")
    goto(at, "pages/data.py")
    at.radio[0].set_value("path").run()
    load("b")
    goto(at, "pages/ood.py")
    result = list(runs.EXPERIMENTS.items.values())[-1]
    ds_b = load_dataset(folder, "b")
    expect = kmeans_ood_split(ds_b, paper_split(ds_b.labelled_ids, seed=0), seed=0)
    assert result.dataset.model == "b"
    assert sorted(result.split.ood) == sorted(expect.ood)


def test_finetune_exact_search_with_another_objective():
    """The exact γ path from the page: NUDGE-N searched exactly for NDCG@10 within the range's
    bounds; the page shows its step curve with the bounds, and the γ equals the CLI's."""
    at = new_app()
    goto(at, "pages/finetune.py")
    {r.label: r for r in at.radio}["NUDGE-N γ"].set_value("exact")
    at.number_input(key="lo_nudge-n").set_value(0.0)
    at.number_input(key="hi_nudge-n").set_value(1.0)
    [s for s in at.selectbox if s.label.startswith("Validation objective")][0].set_value("ndcg")
    [n for n in at.number_input if n.label == "k"][0].set_value(10)
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not errors(at), errors(at)
    spec = at.session_state.settings_cfg
    assert spec["objective"] == "ndcg@10" and spec["gamma"]["nudge-n"]["mode"] == "exact"
    caption = [c.value for c in at.caption if c.value.startswith("NUDGE-N: γ chosen")][0]
    assert "exactly over [0, 1]" in caption and "ndcg@10" in caption
    gamma = at.dataframe[0].value.set_index("method").loc["NUDGE-N", "γ"]
    assert 0 <= gamma <= 1


def test_snapping_slider_offers_the_curve_events():
    at = new_app()
    goto(at, "pages/finetune.py")
    at.toggle(key="snap_events").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    snapped = [s for s in at.select_slider if s.label.endswith("γ (events)")]
    assert len(snapped) == 2
    result = list(__import__("explorer_app.runs", fromlist=["x"]).EXPERIMENTS.items.values())[-1]
    for box, method in zip(snapped, ("nudge-m", "nudge-n")):
        est = result.methods[method].estimator
        events = {f"{x:.4g}" for x in np.append(est.curve_gammas_, est.gamma_)}
        options = set(box.options)  # shown as formatted on the page
        assert len(options) >= 2 and options <= events, (method, options - events)
    assert len(snapped[1].options) == 25  # NUDGE-N's grid: every point is an event


def test_serving_page_shows_every_method_through_each_index():
    at = new_app()
    goto(at, "pages/serving.py")
    assert not errors(at), errors(at)
    table = [d.value for d in at.dataframe if "gain kept" in d.value.columns][0]
    assert set(table["index"]) == {"int8", "binary:rescore=40", "hnsw:M=32,ef=64"}
    assert {"no fine-tuning", "NUDGE-M", "NUDGE-N"} <= set(table["method"])
    at.text_input(key="serving_custom").set_value("truncate:dim=999").run()
    assert any("dim=999" in e for e in errors(at)), errors(at)


def test_exact_search_with_reversed_bounds_is_refused():
    at = new_app()
    goto(at, "pages/finetune.py")
    before = at.session_state.settings_cfg
    {r.label: r for r in at.radio}["NUDGE-N γ"].set_value("exact")
    at.number_input(key="lo_nudge-n").set_value(0.8)
    at.number_input(key="hi_nudge-n").set_value(0.2)
    at.button[0].click().run()
    assert any("LOW < HIGH" in e for e in errors(at)), errors(at)
    assert at.session_state.settings_cfg == before


def test_bundled_example_checks_ood_from_the_first_visit():
    at = new_app()  # the example (the toy, like the bundled one) ships an ood/ query set
    assert [r for r in at.radio if r.label == "Out-of-distribution check"][0].value == "bundled"
    goto(at, "pages/ood.py")
    assert not at.info and len(at.get("plotly_chart")) == 1
    assert any("40 OOD queries" in c.value for c in at.caption)
    result = list(__import__("explorer_app.runs", fromlist=["x"]).EXPERIMENTS.items.values())[-1]
    delta = result.methods["nudge-n"].ood_comparison["ndcg@10"]["delta"]
    findings = [m.value for m in at.markdown if "on OOD queries" in m.value]  # computed sentences
    assert findings and f"{delta:+.3f} on OOD queries" in findings[0]
    assert not any("should hold up better" in m.value for m in at.markdown)


def test_results_flags_a_gamma_that_lowers_test_ndcg():
    """NUDGE-N at a fixed γ = 1 does worse than no fine-tuning on the toy's test queries: the
    Results page says so first, with the numbers; NUDGE-M at γ = 1 gains there and is not flagged."""
    at = new_app()
    goto(at, "pages/finetune.py")
    radios = {r.label: r for r in at.radio}
    radios["NUDGE-M γ"].set_value("fixed")
    radios["NUDGE-N γ"].set_value("fixed")
    [n for n in at.number_input if n.label.startswith("fixed NUDGE-M")][0].set_value(1.0)
    [n for n in at.number_input if n.label.startswith("fixed NUDGE-N")][0].set_value(1.0)
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    goto(at, "pages/results.py")
    result = list(__import__("explorer_app.runs", fromlist=["x"]).EXPERIMENTS.items.values())[-1]
    comp = result.methods["nudge-n"].comparison["ndcg@10"]
    assert comp["delta"] < 0 and result.methods["nudge-m"].comparison["ndcg@10"]["ci_low"] > 0
    warnings = [w.value for w in at.warning]
    hit = [w for w in warnings if w.startswith("NUDGE-N (γ = 1) does worse than no fine-tuning on "
                                                "the test queries")]
    assert hit and f"{comp['delta']:+.3f}" in hit[0] and f"p = {comp['p_value']:.3g}" in hit[0]
    assert not [w for w in warnings if w.startswith("NUDGE-M (γ = 1) does worse") and "test" in w]


def test_sensitivity_seed_table_up_to_20_seeds_and_export_gets_the_sweep():
    at = new_app()
    goto(at, "pages/sensitivity.py")
    seeds = [s for s in at.slider if s.label.startswith("Split seeds")][0]
    assert seeds.max == 20
    seeds.set_value(3).run()
    assert not at.exception, [e.value for e in at.exception]
    table = [d.value for d in at.dataframe if "chosen_gamma" in d.value.columns][0]
    assert list(table["seed"]) == [0, 0, 1, 1, 2, 2]  # every seed, both γ methods
    assert {"test ndcg@10", "test Δndcg@10", "ood ndcg@10"} <= set(table.columns)
    assert not any(c.value.startswith("γ chosen per seed") for c in at.caption)
    sweep = at.session_state["sweep_of_run"]["sweep"]
    assert list(table["chosen_gamma"][table["method"] == "NUDGE-N"]) == sweep.chosen["nudge-n"]
    goto(at, "pages/export.py")
    assert any(c.value == "With the Sensitivity page's sweep." for c in at.caption)
    goto(at, "pages/data.py")
    # another split seed: the sweep no longer describes the run
    [n for n in at.number_input if n.label.startswith("Seed")][0].set_value(5).run()
    goto(at, "pages/export.py")
    assert any(c.value.startswith("Open the Sensitivity page first") for c in at.caption)


def test_words_recall_is_stated_capped_and_no_split_jargon():
    at = new_app()
    assert not any("val-test-train" in c.value for c in at.caption)
    assert any(c.value.startswith("Split: paper protocol") and "cut first" in c.value for c in at.caption)
    goto(at, "pages/results.py")
    assert "min(|relevant|, k)" in at.markdown[0].value
    family = [r for r in at.radio if r.label == "Metric family"][0]
    assert "recall_uncapped" in family.options or "Recall (uncapped)" in family.options
    family.set_value("recall_uncapped").run()
    assert not at.exception, [e.value for e in at.exception]
