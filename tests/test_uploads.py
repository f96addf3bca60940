"""Upload handling: browser files (a zip of the dataset layout, or loose files) to engine inputs."""

from __future__ import annotations

import gzip
import inspect
import io
import shutil
import zipfile

import numpy as np
import pytest

from explorer_app.uploads import (DEFAULT_MODEL, UploadLimits, check_model_name, content_hash,
                                  folder_hash, guess_model_name, load_uploaded_dataset,
                                  load_uploaded_queries, load_uploaded_zip)
from nudge_core import DataError, load_dataset
from nudge_core.files import safe_extract_zip
from synthetic import write_dataset, make_arrays, write_toy, zip_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_toy(tmp_path_factory.mktemp("toy"), n_records=200, n_queries=120)


def test_upload_zip_and_loose(folder, tmp_path):
    ds = load_uploaded_dataset([("toy.zip", zip_folder(folder))], tmp_path / "a")
    assert ds.n_records == 200 and ds.name == "toy"
    emb = folder / "emb" / "toy"
    loose = [(p.name, p.read_bytes()) for p in [emb / "corpus.npy", emb / "queries.npy",
                                                 emb / "corpus_ids.txt", emb / "query_ids.txt",
                                                 folder / "qrels" / "test.tsv", folder / "corpus.jsonl"]]
    ds2 = load_uploaded_dataset(loose, tmp_path / "b")
    assert ds2.n_records == 200 and ds2.corpus_text is not None
    assert np.array_equal(ds.corpus_emb, ds2.corpus_emb)
    assert content_hash(loose) == content_hash(list(reversed(loose)))
    assert folder_hash(folder) == folder_hash(folder)


def test_upload_errors_are_data_errors(folder, tmp_path):
    with pytest.raises(DataError, match="cannot tell what this file is"):
        load_uploaded_dataset([("notes.pdf", b"x")], tmp_path / "c")
    with pytest.raises(DataError, match="not a readable zip archive"):
        load_uploaded_dataset([("broken.zip", b"this is not a zip")], tmp_path / "d")
    emb = folder / "emb" / "toy"
    with pytest.raises(DataError, match="^corpus.npy: not a valid .npy file") as err:
        load_uploaded_dataset([("corpus.npy", b"\x93NUMPY garbage"), ("queries.npy", (emb / "queries.npy").read_bytes()),
                               ("corpus_ids.txt", (emb / "corpus_ids.txt").read_bytes()),
                               ("query_ids.txt", (emb / "query_ids.txt").read_bytes()),
                               ("test.tsv", (folder / "qrels" / "test.tsv").read_bytes())], tmp_path / "e")
    assert str(tmp_path) not in str(err.value)  # named as uploaded, not by its server path
    with pytest.raises(DataError, match="not both"):
        load_uploaded_dataset([("a.zip", b""), ("corpus.npy", b"")], tmp_path / "f")
    with pytest.raises(DataError, match="file names"):
        load_uploaded_dataset([("../../etc/x;y.npy", b"")], tmp_path / "g")


def test_upload_ood_queries(folder, tmp_path):
    ds = load_dataset(folder)
    emb = folder / "emb" / "toy"
    extra = load_uploaded_queries([("queries.npy", (emb / "queries.npy").read_bytes()),
                                   ("query_ids.txt", (emb / "query_ids.txt").read_bytes()),
                                   ("test.tsv", (folder / "qrels" / "test.tsv").read_bytes())],
                                  tmp_path / "o", ds)
    assert len(extra.queries) == len(ds.labelled_ids)
    with pytest.raises(DataError, match="cannot tell what this file is; expected query"):
        load_uploaded_queries([("corpus.npy", b"")], tmp_path / "p", ds)


def loose(folder, model="toy"):
    emb = folder / "emb" / model
    return [(p.name, p.read_bytes()) for p in [emb / "corpus.npy", emb / "queries.npy",
                                                emb / "corpus_ids.txt", emb / "query_ids.txt",
                                                folder / "qrels" / "test.tsv"]]


def test_notes_and_errors_name_files_as_uploaded(folder, tmp_path):
    half = tmp_path / "half"
    shutil.copytree(folder, half)
    emb = half / "emb" / "toy"
    np.save(emb / "corpus.npy", np.load(emb / "corpus.npy").astype(np.float16))
    ds = load_uploaded_dataset(loose(half), tmp_path / "a")
    assert ds.notes == ["corpus.npy: converted float16 to float32"]
    ds = load_uploaded_dataset([("half.zip", zip_folder(half, "data"))], tmp_path / "b")
    assert ds.notes == ["half.zip/data/emb/toy/corpus.npy: converted float16 to float32"]
    assert ds.source == "half.zip"
    np.save(emb / "queries.npy", np.zeros((3, 2), np.float32))
    with pytest.raises(DataError, match=r"^half.zip/data/emb/toy/queries.npy, row 0: is an all-zero"):
        load_uploaded_dataset([("half.zip", zip_folder(half, "data"))], tmp_path / "c")


def test_nothing_but_a_zip_stays_on_disk(folder, tmp_path):
    ds = load_uploaded_dataset(loose(folder), tmp_path / "a")
    assert list((tmp_path / "a").iterdir()) == [] and not isinstance(ds.corpus_emb, np.memmap)
    load_uploaded_dataset([("toy.zip", zip_folder(folder))], tmp_path / "b")
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["toy.zip"]  # for another model later
    ds = load_uploaded_zip(tmp_path / "b" / "toy.zip", model="toy")
    assert ds.n_records == 200 and [p.name for p in (tmp_path / "b").iterdir()] == ["toy.zip"]


def test_zip_limits_follow_the_upload_limit(folder, tmp_path):
    limits = UploadLimits.from_upload_mb(200)
    assert limits == UploadLimits(200 * 2**20, 800 * 2**20, 1000)
    assert "at most 800 MB in at most 1,000 files" in limits.describe()
    params = inspect.signature(safe_extract_zip).parameters
    assert {"max_bytes", "max_members"} <= set(params)  # the engine takes what the app passes
    data = zip_folder(folder)
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as zf:
        for j in range(12):
            zf.writestr(f"toy/extra/{j}.txt", "x")
    small = UploadLimits(file_bytes=2**20, zip_bytes=len(data) * 100, zip_members=10)
    with pytest.raises(DataError, match="^many.zip: has 12 members, more than the limit of 10"):
        load_uploaded_dataset([("many.zip", many.getvalue())], tmp_path / "a", limits=small)
    tight = UploadLimits(file_bytes=2**20, zip_bytes=1000, zip_members=100)
    with pytest.raises(DataError, match=r"^toy.zip: expands to .*more than the limit of 1000 bytes"):
        load_uploaded_dataset([("toy.zip", data)], tmp_path / "b", limits=tight)
    assert load_uploaded_dataset([("toy.zip", data)], tmp_path / "c", limits=limits).n_records == 200


def test_a_gz_member_is_capped_by_the_file_limit(folder, tmp_path):
    big = tmp_path / "big"
    shutil.copytree(folder, big)
    text = (big / "corpus.jsonl").read_bytes()
    (big / "corpus.jsonl").unlink()
    (big / "corpus.jsonl.gz").write_bytes(gzip.compress(text * 200))
    limits = UploadLimits(file_bytes=len(text) * 10, zip_bytes=2**30, zip_members=100)
    with pytest.raises(DataError, match=r"^big.zip/toy/corpus.jsonl.gz: decompresses to more than"):
        load_uploaded_dataset([("big.zip", zip_folder(big))], tmp_path / "a", limits=limits)


def test_model_names(folder, tmp_path):
    assert check_model_name(" e5-small ") == "e5-small"
    for bad in ("", "..", "../x", "a/b", "-x", "x" * 65):
        with pytest.raises(DataError, match="^model name: expected 1-64 letters"):
            check_model_name(bad)
    assert guess_model_name(["e5-small_corpus.npy", "queries.npy"]) == "e5-small"
    assert guess_model_name(["corpus.npy"]) == DEFAULT_MODEL
    ds = load_uploaded_dataset(loose(folder), tmp_path / "a", model="bge.v1")
    assert ds.model == "bge.v1"
    with pytest.raises(DataError, match="^model name: "):
        load_uploaded_dataset(loose(folder), tmp_path / "b", model="../up")


def test_a_zip_with_two_models_loads_the_one_asked_for(tmp_path):
    two = tmp_path / "two"
    c, q, qr = make_arrays(n_records=100, n_queries=60, seed=1)
    write_dataset(two, c, q, qr, model="a")
    write_dataset(two, c[:, :8], q[:, :8], qr, model="b")
    data = zip_folder(two)
    with pytest.raises(DataError, match="several embedding sets; choose one of"):
        load_uploaded_dataset([("two.zip", data)], tmp_path / "x")
    assert load_uploaded_dataset([("two.zip", data)], tmp_path / "y", model="b").dim == 8
