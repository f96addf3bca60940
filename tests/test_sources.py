"""Where the app's data comes from: the example it opens on, the session's private upload folder."""

from __future__ import annotations

import gc

from explorer_app import sources


def test_example_defaults_to_the_bundled_dataset(monkeypatch):
    monkeypatch.delenv("NUDGE_EXAMPLE", raising=False)
    if sources.BUNDLED_EXAMPLE.is_dir():
        assert sources.example_path() == sources.BUNDLED_EXAMPLE
    monkeypatch.setenv("NUDGE_EXAMPLE", "/somewhere/else")
    assert str(sources.example_path()) == "/somewhere/else"


def test_cli_path_is_relative_inside_the_repository(tmp_path):
    assert sources.cli_path(sources.BUNDLED_EXAMPLE) == "sample_data/stdlib"
    assert sources.cli_path(tmp_path) == str(tmp_path)


def test_session_folder_is_deleted_with_the_session():
    holder = sources._SessionFolder()
    (holder.path / "x.npy").write_bytes(b"data")
    path = holder.path
    del holder
    gc.collect()
    assert not path.exists()
