"""The Movement page through AppTest (no browser), and its support code (explorer_app.movement_view).

The toy dataset of ``app_support`` moves nothing at its validated γ, so these tests fix each γ
method's γ at 0.1 first.
"""

from __future__ import annotations

import base64
import json
import threading

import numpy as np
import pytest

from app_support import env, goto, new_app, toy  # noqa: F401 (fixtures)
from explorer_app import movement_view as mv
from nudge_core import registry

GAMMA_METHODS = registry.gamma_methods()


def moving_app():
    """The app on the toy data with every γ method at a fixed γ = 0.1, on the Movement page."""
    at = new_app()
    cfg = at.session_state["settings_cfg"]
    cfg["methods"] = list(GAMMA_METHODS)
    for name in GAMMA_METHODS:
        cfg["gamma"][name].update(mode="fixed", value=0.1)
    at.session_state["settings_cfg"] = cfg
    return goto(at, "pages/movement.py")


def charts(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def arr(value) -> np.ndarray:
    """A trace's array as plotly serialised it (a list, or a typed array {"dtype", "bdata"})."""
    if isinstance(value, dict) and "bdata" in value:
        shape = value.get("shape")
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return out.reshape([int(x) for x in str(shape).split(",")]) if shape else out
    return np.asarray(value)


def trace(spec: dict, name: str) -> dict:
    return next(t for t in spec["data"] if (t.get("name") or "").startswith(name))


def pick_method(at, method: str):
    [s for s in at.selectbox if s.label == "Method"][0].set_value(method).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture()
def fresh_maps(monkeypatch):
    """An empty map cache, and a log of every map the page computes."""
    monkeypatch.setattr(mv, "_JOBS", {})
    calls = []
    real = mv.compute_layout

    def counted(*args, **kwargs):
        calls.append(kwargs.get("method"))
        return real(*args, **kwargs)

    monkeypatch.setattr(mv, "compute_layout", counted)
    return calls


def test_hover_names_the_record_and_its_text(fresh_maps):
    at = moving_app()
    spec = charts(at)[0]
    for name in ("records no training query pulls", "records pulled", "moved records (after)"):
        texts = trace(spec, name)["text"]
        assert texts and all(t.startswith("d") and ": Doc " in t for t in texts), texts[:3]
        assert not any(t.startswith("row ") for t in texts)
        assert "%{text}" in trace(spec, name)["hovertemplate"]


def test_picking_a_query_zooms_in_around_it(fresh_maps):
    at = moving_app()
    whole = charts(at)[0]
    names = ("records no training query pulls", "records pulled", "moved records (after)")
    xs = np.concatenate([arr(trace(whole, n)["x"]) for n in names])
    ys = np.concatenate([arr(trace(whole, n)["y"]) for n in names])
    box = [s for s in at.selectbox if s.label == "Test query"][0]
    box.set_value(box.options[3]).run()
    spec = charts(at)[0]
    query = trace(spec, "this query")
    qx, qy = arr(query["x"])[0], arr(query["y"])[0]
    (x0, x1), (y0, y1) = spec["layout"]["xaxis"]["range"], spec["layout"]["yaxis"]["range"]
    assert x1 - x0 <= np.ptp(xs) + 1e-6  # a zoom never shows more than the whole map
    # always centred on the query (on UMAP it landed on the plot's edge)
    assert (x0 + x1) / 2 == pytest.approx(qx) and (y0 + y1) / 2 == pytest.approx(qy)
    rel = trace(spec, "relevant records")  # its relevant records are in view (a far top-10 may not)
    reach = np.abs(np.column_stack([arr(rel["x"]), arr(rel["y"])]) - [qx, qy]).max(axis=0)
    if np.all(2 * reach <= [np.ptp(xs), np.ptp(ys)]):
        assert np.all((x0 <= arr(rel["x"])) & (arr(rel["x"]) <= x1))
        assert np.all((y0 <= arr(rel["y"])) & (arr(rel["y"]) <= y1))
    # the top-10 table: texts get the width, the rank and ✓ columns stay narrow
    table = at.dataframe[0]
    config = json.loads(table.proto.columns)
    assert config["before"]["width"] == "large" and config["after"]["width"] == "large"
    assert config["rank"]["width"] <= 60
    assert table.value["before"].str.contains(": Doc ").all()


def test_an_ood_set_does_not_recompute_the_map(fresh_maps):
    at = moving_app()
    assert fresh_maps == ["pca"]
    for _ in range(2):  # the dataset's own OOD set on if it is off, off if on, and back
        goto(at, "pages/data.py")
        radio = [r for r in at.radio if r.label == "Out-of-distribution check"][0]
        radio.set_value("none" if radio.value == "bundled" else "bundled").run()
        goto(at, "pages/ood.py")  # the run is redone with (or without) the OOD set
        assert any("40 OOD queries" in c.value for c in at.caption) == (radio.value == "bundled")
        goto(at, "pages/movement.py")
        assert fresh_maps == ["pca"]  # same records, same moves: the same map


def test_nudge_m_length_is_drawn_and_the_caption_says_what_maps_show(fresh_maps):
    at = moving_app()
    lengths = {}
    for method in GAMMA_METHODS:
        pick_method(at, method)
        moved = trace(charts(at)[0], "moved records (after)")
        colour = moved["marker"]["color"]
        lengths[method] = None if isinstance(colour, str) else arr(colour)
        caption = [c.value for c in at.caption if "moved;" in c.value][0]
        assert "uses cosine similarity" not in caption and "unit-length" in caption
    changes_length = [m for m in GAMMA_METHODS if lengths[m] is not None]
    assert changes_length == ["nudge-m"]
    # e = v + γ ĉ: ‖e‖² = 1 + 2γ v·ĉ + γ², mostly longer than v (v·ĉ > 0 when pulled)
    assert np.median(lengths["nudge-m"]) > 1.0 and np.ptp(lengths["nudge-m"]) > 0


def test_faithfulness_and_one_record_up_close(fresh_maps):
    at = moving_app()
    titles = [s["layout"]["title"]["text"] for s in charts(at)]
    assert any(t.startswith("How faithful") for t in titles)
    faith = next(s for s in charts(at) if s["layout"]["title"]["text"].startswith("How faithful"))
    bars = [t for t in faith["data"] if t["type"] == "bar"]
    assert [list(arr(t["x"])) for t in bars] == [["PCA"], ["PCA"]]
    assert all(0 <= arr(t["y"])[0] <= 1 for t in bars)
    said = next(m.value for m in at.markdown if "nearest neighbours in the embedding space" in m.value)
    assert "PCA map a moved record keeps" in said and "random map" in said
    # the why-it-moved panel
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Moved by ‖Δ‖"]) > 0 and int(metrics["Training queries pulling it"]) >= 1
    why = next(d.value for d in at.dataframe if "cos before" in d.value.columns)
    assert len(why) == int(metrics["Training queries pulling it"])
    assert (why["cos after"] > why["cos before"]).mean() > 0.5  # pulled toward its queries
    assert any("local PCA" in json.dumps(s["layout"]) for s in charts(at))
    assert any(b.label.startswith("Movement figures") for b in at.get("download_button"))


def test_umap_map_swaps_in_when_ready(fresh_maps, monkeypatch):
    """UMAP runs in the background while the page shows the PCA map (a stand-in for UMAP here,
    held until released, so that the test sees both states without compiling numba)."""
    release = threading.Event()
    counted = mv.compute_layout
    umaps = []

    def slow_umap(*args, **kwargs):
        if kwargs.get("method") == "umap":
            umaps.append(threading.current_thread().name)
            assert release.wait(60)
            lay = counted(*args, **dict(kwargs, method="pca"))
            lay.method = "umap"
            return lay
        return counted(*args, **kwargs)

    monkeypatch.setattr(mv, "compute_layout", slow_umap)
    at = moving_app()
    [r for r in at.radio if r.label == "Map"][0].set_value("umap").run()
    assert not at.exception
    assert charts(at)[0]["layout"]["title"]["text"].endswith("PCA")
    waiting = [p for p in at.get("progress") if "UMAP map" in p.proto.text]
    assert waiting and "PCA map is shown" in waiting[0].proto.text
    release.set()
    job = next(j for k, j in mv._JOBS.items() if k.split(":")[-3] == "umap")
    job.future.result(timeout=60)
    at.run()
    assert charts(at)[0]["layout"]["title"]["text"].endswith("UMAP")
    faith = next(s for s in charts(at) if s["layout"]["title"]["text"].startswith("How faithful"))
    assert list(arr(faith["data"][0]["x"])) == ["PCA", "UMAP"]
    assert len(umaps) == 1 and umaps[0].startswith("movement-map")  # once, in the background


# ---------------------------------------------------------------- support code
def test_zoom_box_centres_and_never_zooms_out():
    whole = np.random.default_rng(0).uniform(-0.3, 0.3, (500, 2))  # a small cloud (PCA of unit vectors)
    extent = np.ptp(whole, axis=0)
    centre = np.array([0.05, -0.02])
    pts = centre + np.array([[0.01, 0.0], [-0.03, 0.02]])
    lo, hi = mv.zoom_box(pts, centre, whole)
    assert np.allclose((lo + hi) / 2, centre)
    assert np.all(lo <= pts.min(axis=0)) and np.all(hi >= pts.max(axis=0))
    assert np.all(hi - lo < extent / 4)  # the old fixed padding of 1.0 zoomed out
    lo, hi = mv.zoom_box(centre[None], centre, whole)  # only the query: a small, non-empty view
    assert np.all(hi - lo > 0) and np.all(hi - lo < extent / 10)
    # a query at the map's edge with a record across the map: still centred on the query (it
    # landed on the plot's edge), the view no larger than the map
    edge = whole[np.argmin(whole[:, 0])]
    across = whole[np.argmax(whole[:, 0])][None]
    lo, hi = mv.zoom_box(across, edge, whole)
    assert np.allclose((lo + hi) / 2, edge) and np.all(hi - lo <= extent + 1e-12)
    # one far record among many near ones does not undo the zoom
    near = centre + np.random.default_rng(1).uniform(-0.01, 0.01, (9, 2))
    lo, hi = mv.zoom_box(np.vstack([near, across]), centre, whole)
    assert np.allclose((lo + hi) / 2, centre) and np.all(hi - lo < extent / 4)


def test_layout_key_follows_what_shapes_the_map():
    rng = np.random.default_rng(0)
    rows, emb = np.array([1, 5, 9]), rng.standard_normal((3, 4)).astype(np.float32)
    q = {"train": rng.standard_normal((5, 4)), "test": rng.standard_normal((2, 4))}
    key = mv.layout_key("data", rows, emb, q, "umap", 50000, None)
    assert key == mv.layout_key("data", rows.copy(), emb.copy(), dict(q), "umap", 50000, None)
    moved = emb.copy()
    moved[0, 0] += 1e-3
    assert key != mv.layout_key("data", rows, moved, q, "umap", 50000, None)
    assert key != mv.layout_key("data", rows, emb, {"train": q["train"]}, "umap", 50000, None)
    assert key != mv.layout_key("other", rows, emb, q, "umap", 50000, None)
    assert key != mv.layout_key("data", rows, emb, q, "pca", 50000, None)


def test_export_figures_for_the_export_page(fresh_maps):
    moving_app()  # runs the experiment; AppTest shares the process and its caches
    from explorer_app import runs

    result = list(runs.EXPERIMENTS.items.values())[-1]  # the most recent run
    figs = mv.export_figures(result, "toy-export")
    names = list(figs)
    for method in GAMMA_METHODS:
        label = registry.label(method)
        assert f"Movement, {label}, PCA" in names and f"Map faithfulness, {label}" in names
    assert not any("UMAP" in n for n in names)  # never starts a UMAP map
