"""The Serving page's command line is the Export page's command plus the index flags (the same
split file handling: a downloaded split file already holds the k-means OOD queries)."""

from __future__ import annotations

import json

from app_support import choose, env, goto, new_app, toy  # noqa: F401 (fixtures)


def test_serving_command_matches_the_export_command_for_a_split_file():
    at = choose(new_app(), "Split", "file")
    ids = [f"q{j}" for j in range(150)]
    upload = json.dumps({"train": ids[:100], "val": ids[100:120], "test": ids[120:]}).encode()
    at.file_uploader(key="split_upload").set_value(("s.json", upload, "application/json")).run()
    choose(at, "Out-of-distribution check", "kmeans")
    goto(at, "pages/export.py")
    export = at.code[0].value
    assert "--splits s.json" in export and "--ood" not in export  # the file holds the OOD part
    goto(at, "pages/serving.py")
    at.multiselect(key="serving_presets").set_value(["int8"]).run()
    assert not at.exception, [e.value for e in at.exception]
    serving = at.code[-1].value
    assert "--index int8" in serving and "--splits s.json" in serving and "--ood" not in serving
