"""The app on server datasets too large for memory (issue 16): a sharded corpus, and a one-file
corpus over the in-memory limit, walked through every page with the corpus never read whole.

Reading a sharded corpus whole goes through ``__array__`` of :class:`~nudge_core.shards.
ShardedCorpus` or :class:`~nudge_core.outofcore.ShardedIndex`; the walk makes both raise, so a
page that would hold a large corpus in memory fails here instead of on a user's server.
"""

from __future__ import annotations

import shutil

import pytest

from app_support import errors, goto, new_app, toy  # noqa: F401 (toy: a fixture)
from nudge_core import registry
from nudge_core.outofcore import ShardedIndex
from nudge_core.shards import ShardedCorpus, shard_dataset


@pytest.fixture
def server(toy, tmp_path, monkeypatch):
    """A server offering ``toysh`` (the app's toy, 4 shards of 70, 70, 70, 30 rows) and ``toy1``
    (the same records as one corpus.npy)."""
    root = tmp_path / "srv"
    root.mkdir()
    shard_dataset(toy, 70, root / "toysh")
    shutil.copytree(toy, root / "toy1")
    monkeypatch.setenv("NUDGE_DATA_DIRS", str(root))
    return root


@pytest.fixture
def never_whole(monkeypatch):
    def refuse(self, dtype=None, copy=None):
        raise AssertionError(f"{type(self).__name__} read whole into memory")
    monkeypatch.setattr(ShardedCorpus, "__array__", refuse)
    monkeypatch.setattr(ShardedIndex, "__array__", refuse)


def visit(at, page: str):
    goto(at, page)
    assert not errors(at), (page, errors(at))


def load(at, shown: str):
    at.radio[0].set_value("path").run()
    [s for s in at.selectbox if s.label == "Dataset on the server"][0].set_value(shown).run()
    [b for b in at.button if b.label == "Load dataset"][0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not errors(at), errors(at)


def test_every_page_on_a_sharded_dataset_over_the_limit_never_reads_it_whole(server, never_whole,
                                                                            monkeypatch):
    monkeypatch.setenv("NUDGE_IN_MEMORY_MB", "0")  # every corpus counts as too large
    at = new_app()
    load(at, "toysh")
    assert any("4 shards" in i.value and "out of core" in i.value for i in at.info)
    cfg = at.session_state["settings_cfg"]
    for name in registry.gamma_methods():  # a fixed γ that moves records (the Movement page)
        cfg["gamma"][name].update(mode="fixed", value=0.1)
    at.session_state["settings_cfg"] = cfg
    visit(at, "pages/finetune.py")
    assert at.dataframe, "the fine-tune table"
    visit(at, "pages/results.py")
    box = [s for s in at.selectbox if s.label == "Query"][0]
    box.set_value(box.options[1].split(":")[0]).run()
    assert not at.exception, [e.value for e in at.exception]
    visit(at, "pages/ood.py")
    visit(at, "pages/movement.py")
    pick = [s for s in at.selectbox if s.label.startswith("Moved record")][0]
    pick.set_value(pick.options[-1]).run()  # why it moved + local view of another record
    assert not at.exception, [e.value for e in at.exception]
    assert any("Training queries pulling it" == m.label for m in at.metric)
    visit(at, "pages/sensitivity.py")
    visit(at, "pages/export.py")
    button = [b for b in at.get("download_button") if "Fine-tuned embeddings" in b.proto.label][0]
    assert button.proto.disabled
    assert any("too large to download through the browser" in c.value for c in at.caption)
    visit(at, "pages/serving.py")
    said = " ".join(i.value for i in at.info)
    assert "over this server's in-memory limit of 0 MiB" in said and "does not build them" in said
    assert "--index int8" in at.code[0].value and "toysh" in at.code[0].value
    visit(at, "pages/compare.py")
    assert not errors(at), errors(at)


def test_sharded_and_one_file_datasets_give_the_same_results_in_the_app(server, monkeypatch):
    tables = {}
    for shown, limit in (("toysh", "256"), ("toy1", "256"), ("toy1", "0")):
        monkeypatch.setenv("NUDGE_IN_MEMORY_MB", limit)
        at = new_app()
        load(at, shown)
        notes = " ".join(i.value for i in at.info)
        routed = "over the in-memory limit of 0 MiB: it is searched out of core" in notes
        assert routed == (shown == "toy1" and limit == "0"), notes  # the switch is said
        goto(at, "pages/results.py")
        tables[shown, limit] = at.dataframe[0].value.set_index("method").drop(columns="fit_seconds")
    base = tables["toy1", "256"]
    for key, table in tables.items():
        assert table.equals(base), key
