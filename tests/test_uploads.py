"""Upload handling: browser files (a zip of the dataset layout, or loose files) to engine inputs."""

from __future__ import annotations

import numpy as np
import pytest

from explorer_app.uploads import (content_hash, folder_hash, load_uploaded_dataset,
                                  load_uploaded_queries, tidy_message)
from nudge_core import DataError, load_dataset
from synthetic import write_toy, zip_folder


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
    with pytest.raises(DataError, match="corpus.npy: not a valid .npy file") as err:
        load_uploaded_dataset([("corpus.npy", b"\x93NUMPY garbage"), ("queries.npy", (emb / "queries.npy").read_bytes()),
                               ("corpus_ids.txt", (emb / "corpus_ids.txt").read_bytes()),
                               ("query_ids.txt", (emb / "query_ids.txt").read_bytes()),
                               ("test.tsv", (folder / "qrels" / "test.tsv").read_bytes())], tmp_path / "e")
    assert "upload/" in tidy_message(str(err.value), tmp_path / "e")
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
