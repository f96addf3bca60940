"""Where the app's data comes from and where it keeps files: the example it opens on, the server
datasets an operator allows, the per-process upload root and each session's private folder."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from explorer_app import folders, sources
from nudge_core import DataError
from synthetic import write_toy, zip_folder


def test_example_defaults_to_the_bundled_dataset(monkeypatch):
    monkeypatch.delenv("NUDGE_EXAMPLE", raising=False)
    if sources.BUNDLED_EXAMPLE.is_dir():
        assert sources.example_path() == sources.BUNDLED_EXAMPLE
    monkeypatch.setenv("NUDGE_EXAMPLE", "/somewhere/else")
    assert str(sources.example_path()) == "/somewhere/else"


def test_cli_path_is_relative_inside_the_repository(tmp_path):
    assert sources.cli_path(sources.BUNDLED_EXAMPLE) == "sample_data/stdlib"
    assert sources.cli_path(tmp_path) == str(tmp_path)


# ---------------------------------------------------------------- the upload area
@pytest.fixture()
def own_tmp(tmp_path, monkeypatch):
    """A temporary folder of our own, and no upload root made yet in this process."""
    base = tmp_path / "tmp"
    base.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    monkeypatch.setattr(folders, "_root", None)
    return base


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_one_root_per_process_and_stale_roots_are_cleared(own_tmp):
    stale = own_tmp / f"nudge-explorer-{dead_pid()}-abc123"
    (stale / "session-x").mkdir(parents=True)
    (stale / "session-x" / "corpus.npy").write_bytes(b"someone's upload")
    alive = own_tmp / f"nudge-explorer-{os.getppid()}-def456"  # our parent is running
    alive.mkdir()
    other = own_tmp / "nudge-explorer-notes"  # not a root's name: left alone
    other.mkdir()
    root = folders.process_root()
    assert not stale.exists() and alive.is_dir() and other.is_dir()
    assert root.parent == own_tmp and root.name.startswith(f"nudge-explorer-{os.getpid()}-")
    assert folders.process_root() == root  # one per process
    holder = folders.SessionFolder()
    assert holder.path.parent == root and holder.path.name.startswith("session-")


def test_session_folder_is_deleted_with_the_session(own_tmp):
    holder = folders.SessionFolder()
    (holder.path / "x.npy").write_bytes(b"data")
    path = holder.path
    del holder
    gc.collect()
    assert not path.exists() and path.parent.is_dir()


# ---------------------------------------------------------------- datasets on the server
@pytest.fixture()
def served(tmp_path, monkeypatch):
    root = tmp_path / "served"
    write_toy(root / "toy", n_records=60, n_queries=40)
    (root / "toy.zip").write_bytes(zip_folder(root / "toy"))
    (root / "readme.txt").write_text("not a dataset")
    (root / "empty").mkdir()
    outside = write_toy(tmp_path / "outside", n_records=60, n_queries=40)
    (root / "link").symlink_to(outside, target_is_directory=True)
    monkeypatch.setenv(folders.DATA_DIRS_ENV, str(root))
    return root


def test_only_datasets_inside_an_allowed_root_are_offered(served, tmp_path):
    offered = folders.server_datasets()
    assert offered == {"toy": (served / "toy").resolve(), "toy.zip": (served / "toy.zip").resolve()}
    assert folders.allowed_dataset(served / "toy") == (served / "toy").resolve()
    for path in (served / "link", tmp_path / "outside", served / "readme.txt", served,
                 served / "toy" / ".." / ".." / "outside", Path("/"), Path("/etc/passwd")):
        with pytest.raises(DataError, match="is not among the datasets this server offers"):
            folders.allowed_dataset(path)


def test_an_inner_symlink_cannot_lead_out_of_the_root(served, tmp_path):
    sneaky = served / "sneaky"
    sneaky.mkdir()
    (sneaky / "only").symlink_to(tmp_path / "outside", target_is_directory=True)
    assert "sneaky" not in folders.server_datasets()
    with pytest.raises(DataError, match="is not among the datasets"):
        folders.allowed_dataset(sneaky)


def test_no_roots_by_default_but_the_development_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(folders.DATA_DIRS_ENV, "")
    assert folders.allowed_roots() == [] and folders.server_datasets() == {}
    monkeypatch.delenv(folders.DATA_DIRS_ENV)
    expected = [folders.DEV_DATASETS.resolve()] if folders.DEV_DATASETS.is_dir() else []
    assert folders.allowed_roots() == expected
    monkeypatch.setenv(folders.DATA_DIRS_ENV, os.pathsep.join([str(tmp_path), "/no/such", str(tmp_path)]))
    assert folders.allowed_roots() == [tmp_path.resolve()]


def test_upload_folders_are_never_loadable_by_path(own_tmp, monkeypatch):
    holder = folders.SessionFolder()
    write_toy(holder.path / "upload" / "mine", n_records=60, n_queries=40)
    monkeypatch.setenv(folders.DATA_DIRS_ENV, os.pathsep.join([str(own_tmp), str(holder.path)]))
    assert folders.allowed_roots() == [own_tmp.resolve()]  # a root inside the upload area is dropped
    assert folders.server_datasets() == {}
    for path in (holder.path / "upload" / "mine", holder.path, folders.process_root()):
        with pytest.raises(DataError, match="is not among the datasets"):
            folders.allowed_dataset(path)
    monkeypatch.setenv(folders.DATA_DIRS_ENV, str(own_tmp.parent))  # a root holding the temp folder
    assert "tmp" not in folders.server_datasets()


def test_scrub_cuts_upload_paths(own_tmp):
    root = folders.process_root()
    text = f"{root}/session-ab12/upload-x/dataset/emb/m/corpus.npy: bad; see {folders.REPO}/README.md"
    assert folders.scrub(text) == "upload/upload-x/dataset/emb/m/corpus.npy: bad; see README.md"


def test_zip_models_reads_the_archive_without_extracting(tmp_path):
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name in ("d/emb/a/corpus.npy", "d/emb/b/corpus.npy", "d/ood/emb/c/queries.npy",
                     "d/qrels/test.tsv"):
            zf.writestr(name, b"x")
    assert folders.zip_models(path) == ["a", "b"]  # the dataset's own, not its OOD set's
    assert folders.zip_models(tmp_path / "missing.zip") == []
    shutil.copy(__file__, tmp_path / "not.zip")
    assert folders.zip_models(tmp_path / "not.zip") == []
