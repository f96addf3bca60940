"""What the AppTest modules share: a small synthetic dataset (with its own OOD set) the app opens
on, the environment that keeps AppTest fast, and helpers to drive pages and uploaders.

The app is pointed at the dataset with $NUDGE_EXAMPLE; UMAP's background warm-up is switched off
($NUDGE_NO_WARMUP) and the Movement page defaults to PCA ($NUDGE_PROJECTION) to keep this fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from synthetic import make_arrays, write_dataset

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    path = tmp_path_factory.mktemp("app-toy") / "toy"
    corpus, queries, qrels = make_arrays(n_records=240, n_queries=150, seed=3, noise=0.5)
    write_dataset(path, corpus, queries, qrels)
    # the dataset's own OOD query set: a second query set over the same records
    _, ood_q, ood_qrels = make_arrays(n_records=240, n_queries=40, seed=4, noise=0.8)
    ood = path / "ood"
    (ood / "emb" / "toy").mkdir(parents=True)
    (ood / "qrels").mkdir()
    np.save(ood / "emb" / "toy" / "queries.npy", ood_q)
    (ood / "emb" / "toy" / "query_ids.txt").write_text("".join(f"o{j}\n" for j in range(40)))
    (ood / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"o{q[1:]}\t{d}\t{g}\n" for q, judged in ood_qrels.items() for d, g in judged.items()))
    return path


@pytest.fixture(autouse=True)
def env(toy, monkeypatch):
    monkeypatch.setenv("NUDGE_EXAMPLE", str(toy))
    monkeypatch.setenv("NUDGE_NO_WARMUP", "1")
    monkeypatch.setenv("NUDGE_PROJECTION", "pca")


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def choose(at: AppTest, label: str, value) -> AppTest:
    """Set the radio button group labelled ``label`` and run."""
    [r for r in at.radio if r.label == label][0].set_value(value).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def upload(at: AppTest, key: str, files) -> AppTest:
    """Drop ``files`` on the uploader ``key`` (:func:`explorer_app.widgets.replacing_uploader`,
    whose widget key changes with every drop) and run."""
    turn = at.session_state[f"{key}_turn"] if f"{key}_turn" in at.session_state else 0
    at.file_uploader(key=f"{key}_{turn}").set_value(files).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def loose_files(folder: Path, model: str = "toy") -> list[tuple[str, bytes, str]]:
    """A dataset folder's files as loose uploads (name, bytes, mime type)."""
    emb = folder / "emb" / model
    return [(p.name, p.read_bytes(), "application/octet-stream")
            for p in (emb / "corpus.npy", emb / "queries.npy", emb / "corpus_ids.txt",
                      emb / "query_ids.txt", folder / "qrels" / "test.tsv")]
