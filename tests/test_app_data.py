"""The Data page's sources through AppTest: server datasets from the operator's allowed roots only,
uploads (zip, loose files, OOD sets) named as uploaded, replaced and cleared, and the one error
boundary that keeps tracebacks and server paths out of the browser."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from app_support import (REPO, choose, env, errors, goto, loose_files, new_app, toy,  # noqa: F401
                         upload)
from synthetic import make_arrays, write_dataset, zip_folder

WHERE = "Where is the data?"


def shown_text(at) -> str:
    """Every message, caption, markdown and code block on the page, as one string."""
    parts = [e.value for kind in ("error", "info", "warning", "success", "caption", "markdown", "code")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def no_server_paths(text: str) -> None:
    for secret in {tempfile.gettempdir(), str(Path(tempfile.gettempdir()).resolve())}:
        assert secret not in text, text
    assert "nudge-explorer-" not in text and "nudge-session" not in text and "session-" not in text


# ---------------------------------------------------------------- server datasets
def test_server_datasets_are_a_choice_among_the_allowed_roots(toy, tmp_path, monkeypatch):
    root = tmp_path / "served"
    root.mkdir()
    shutil.copytree(toy, root / "toy")
    (root / "packed.zip").write_bytes(zip_folder(toy, "data"))
    (root / "notes").mkdir()  # not a dataset: not offered
    (root / "escape").symlink_to(toy, target_is_directory=True)  # leads outside the root
    monkeypatch.setenv("NUDGE_DATA_DIRS", str(root))
    at = choose(new_app(), WHERE, "path")
    assert len(at.text_input) == 0  # nothing to type a path into
    box = [s for s in at.selectbox if s.label == "Dataset on the server"][0]
    assert box.options == ["packed.zip", "toy"]
    box.set_value("toy").run()
    [b for b in at.button if b.label == "Load dataset"][0].click().run()
    assert not at.exception and not errors(at)
    src = at.session_state.source
    assert src["kind"] == "path" and src["path"] == str((root / "toy").resolve())
    goto(at, "pages/export.py")
    assert str((root / "toy").resolve()) in at.code[0].value  # the command runs on the server


def test_no_server_datasets_unless_the_operator_names_them(monkeypatch):
    monkeypatch.setenv("NUDGE_DATA_DIRS", "")
    at = choose(new_app(), WHERE, "path")
    assert not [s for s in at.selectbox if s.label == "Dataset on the server"]
    assert any("offers no datasets" in i.value and "NUDGE_DATA_DIRS" in i.value for i in at.info)
    assert len(at.text_input) == 0


def test_a_dataset_removed_from_the_allowed_roots_is_no_longer_read(toy, tmp_path, monkeypatch):
    shutil.copytree(toy, tmp_path / "toy")
    monkeypatch.setenv("NUDGE_DATA_DIRS", str(tmp_path))
    at = choose(new_app(), WHERE, "path")
    [b for b in at.button if b.label == "Load dataset"][0].click().run()
    assert at.session_state.source["kind"] == "path"
    monkeypatch.setenv("NUDGE_DATA_DIRS", "")
    goto(at, "pages/results.py")
    assert any("not among the datasets this server offers" in e for e in errors(at)), errors(at)


# ---------------------------------------------------------------- uploads
def test_upload_zip_broken_file_and_session_isolation(toy):
    at = choose(new_app(), WHERE, "upload")
    other = new_app()
    assert any("MB" in m.value for m in at.markdown)
    upload(at, "dataset_upload", ("broken.zip", b"not a zip at all", "application/zip"))
    assert errors(at) and "broken.zip" in errors(at)[0]
    no_server_paths(shown_text(at))
    folder = at.session_state.tmp_holder.path
    assert list(folder.iterdir()) == []  # the failed upload's files are gone
    upload(at, "dataset_upload", ("mine.zip", zip_folder(toy, "data"), "application/zip"))
    assert not errors(at) and at.session_state.source["label"] == "upload: mine"
    assert list(folder.iterdir()) == []  # loaded into memory; nothing stays on disk
    upload(at, "dataset_upload", ("again.zip", zip_folder(toy, "data"), "application/zip"))
    assert not errors(at) and at.session_state.source["label"] == "upload: again"
    assert at.session_state.upload["files"] == ["again.zip"]  # replaced, not added to
    goto(at, "pages/results.py")
    # the other browser session never sees this upload
    other.run()
    assert other.session_state.source["kind"] == "bundled"
    assert other.session_state.upload is None


def test_the_upload_text_states_the_zip_limits():
    at = choose(new_app(), WHERE, "upload")
    text = " ".join(m.value for m in at.markdown)
    assert "up to **200 MB**" in text
    assert "at most 800 MB in at most 1,000 files" in text


def test_loose_upload_with_bad_array_names_the_file_as_uploaded(toy):
    at = choose(new_app(), WHERE, "upload")
    files = loose_files(toy)
    broken = [("corpus.npy", b"\x93NUMPY\x01\x00broken", "application/octet-stream")] + files[1:]
    upload(at, "dataset_upload", broken)
    assert errors(at) and errors(at)[0].startswith("corpus.npy: "), errors(at)
    no_server_paths(shown_text(at))
    upload(at, "dataset_upload", files)
    assert not errors(at)
    assert at.session_state.source["kind"] == "upload"


def test_conversion_notes_name_files_as_uploaded(toy, tmp_path):
    half = tmp_path / "half"
    shutil.copytree(toy, half)
    emb = half / "emb" / "toy"
    np.save(emb / "corpus.npy", np.load(emb / "corpus.npy").astype(np.float16))
    at = choose(new_app(), WHERE, "upload")
    files = loose_files(half)
    files[0] = ("my_corpus.npy",) + files[0][1:]
    upload(at, "dataset_upload", files)
    assert not errors(at), errors(at)
    notes = [i.value for i in at.info]
    assert "my_corpus.npy: converted float16 to float32" in notes, notes
    upload(at, "dataset_upload", ("half.zip", zip_folder(half, "data"), "application/zip"))
    notes = [i.value for i in at.info]
    assert "half.zip/data/emb/toy/corpus.npy: converted float16 to float32" in notes, notes
    assert at.session_state.upload["dataset"].notes == notes  # and so in the results JSON
    no_server_paths(shown_text(at))


def test_a_zip_with_two_embedding_sets_offers_a_choice(tmp_path):
    folder = tmp_path / "two"
    c, q, qr = make_arrays(n_records=200, n_queries=120, seed=3, noise=0.5)
    write_dataset(folder, c, q, qr, model="a")
    c2, q2, _ = make_arrays(n_records=200, n_queries=120, seed=9, noise=0.5, dim=8)
    write_dataset(folder, c2, q2, qr, model="b")
    at = choose(new_app(), WHERE, "upload")
    upload(at, "dataset_upload", ("two.zip", zip_folder(folder, "two"), "application/zip"))
    assert not errors(at), errors(at)
    box = [s for s in at.selectbox if s.label == "Embedding set in the zip"][0]
    assert box.options == ["a", "b"] and at.session_state.upload["dataset"].dim == 16
    box.set_value("b").run()
    assert not at.exception and not errors(at)
    assert at.session_state.upload["dataset"].dim == 8
    assert any("model `b`" in s.value for s in at.success)
    goto(at, "pages/export.py")
    assert "--embeddings b" in at.code[0].value


def test_loose_upload_asks_for_the_model_name(toy):
    at = choose(new_app(), WHERE, "upload")
    files = loose_files(toy)
    files[0] = ("e5-small_corpus.npy",) + files[0][1:]
    upload(at, "dataset_upload", files)
    name = [t for t in at.text_input if t.label == "Model name"][0]
    assert name.value == "e5-small"  # guessed from the file names, not the constant "uploaded"
    name.set_value("../elsewhere").run()
    assert any("model name: expected 1-64 letters" in e for e in errors(at)), errors(at)
    [t for t in at.text_input if t.label == "Model name"][0].set_value("multilingual-e5").run()
    assert not errors(at)
    goto(at, "pages/export.py")
    assert "--embeddings multilingual-e5" in at.code[0].value


def test_the_upload_can_be_cleared(toy):
    at = choose(new_app(), WHERE, "upload")
    upload(at, "dataset_upload", loose_files(toy))
    assert at.session_state.source["kind"] == "upload"
    turn = at.session_state["dataset_upload_turn"]
    assert at.file_uploader(key=f"dataset_upload_{turn}").value in (None, [])  # empty again
    [b for b in at.button if b.label == "Clear the upload"][0].click().run()
    assert at.session_state.upload is None and at.session_state.source["kind"] == "bundled"


def test_uploaded_ood_set_replaced_and_cleared(toy):
    at = choose(new_app(), "Out-of-distribution check", "upload")
    emb = toy / "emb" / "toy"
    files = [("queries.npy", (emb / "queries.npy").read_bytes(), "application/octet-stream"),
             ("query_ids.txt", (emb / "query_ids.txt").read_bytes(), "text/plain"),
             ("ood.tsv", (toy / "qrels" / "test.tsv").read_bytes(), "text/plain")]
    upload(at, "ood_upload_w", files)
    assert not errors(at)
    key = at.session_state.ood_upload["key"]
    goto(at, "pages/ood.py")
    assert set(at.dataframe[0].value["part"]) == {"in-distribution", "OOD"}
    goto(at, "pages/data.py")
    ood = toy / "ood"
    upload(at, "ood_upload_w", [
        ("queries.npy", (ood / "emb" / "toy" / "queries.npy").read_bytes(), "application/octet-stream"),
        ("query_ids.txt", (ood / "emb" / "toy" / "query_ids.txt").read_bytes(), "text/plain"),
        ("ood.tsv", (ood / "qrels" / "test.tsv").read_bytes(), "text/plain")])
    assert at.session_state.ood_upload["key"] != key
    goto(at, "pages/ood.py")
    assert any("40 OOD queries" in c.value for c in at.caption)  # the new set, not a cached run
    goto(at, "pages/data.py")
    [b for b in at.button if b.label == "Clear the OOD set"][0].click().run()
    assert at.session_state.ood_upload is None


# ---------------------------------------------------------------- the error boundary
def test_an_unexpected_error_is_logged_not_shown(monkeypatch, caplog):
    from explorer_app import runs

    def broken(*args, **kwargs):
        raise RuntimeError(f"boom in {tempfile.gettempdir()}/nudge-explorer-1-x/session-y/a.npy")
    monkeypatch.setattr(runs, "run_experiment", broken)
    monkeypatch.setattr(runs, "EXPERIMENTS", runs._Cache(2))  # no cached result to hide it
    at = new_app()
    with caplog.at_level(logging.ERROR, logger="nudge_explorer"):
        goto(at, "pages/results.py")
    assert not at.exception
    assert len(errors(at)) == 1 and "Something went wrong on this page (RuntimeError)" in errors(at)[0]
    assert "boom" not in shown_text(at) and "Traceback" not in shown_text(at)
    no_server_paths(shown_text(at))
    logged = [r for r in caplog.records if r.name == "nudge_explorer"]
    assert logged and logged[0].exc_info and "boom" in str(logged[0].exc_info[1])
    ref = re.search(r"reference (\w+)", logged[0].getMessage()).group(1)
    assert f"reference {ref}." in errors(at)[0]  # the box points at the log entry


def test_streamlit_shows_no_error_details():
    config = (REPO / ".streamlit" / "config.toml").read_text()
    assert 'showErrorDetails = "none"' in config and '"full"' not in config


def test_a_split_file_that_is_not_json_is_refused_by_name():
    at = choose(new_app(), "Split", "file")
    for data, words in ((b"[" * 100_000, "s.json, line 1: JSON nested 100,000 levels deep"),
                        (b"\xff\xfe{}", "s.json: is not UTF-8 text"),
                        (b'{"train": 1' + b"0" * 5000 + b"}", "s.json, line 1: holds a number of")):
        at.file_uploader(key="split_upload").set_value(("s.json", data, "application/json")).run()
        assert not at.exception, [e.value for e in at.exception]
        assert any(e.startswith(words) for e in errors(at)), errors(at)
        assert any("using the paper protocol" in w.value for w in at.warning)
