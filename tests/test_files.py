"""The input helpers on their own: echoed input cut short, the one JSON parser, grades, the caps of
``.gz`` files and zip archives, and the degenerate-data notes (sampled, then confirmed in full)."""

from __future__ import annotations

import gzip
import io
import zipfile

import numpy as np
import pytest

from nudge_core import files
from nudge_core.errors import DataError
from nudge_core.files import excerpt, parse_json, read_text_lines, safe_extract_zip
from nudge_core.matrices import DEGENERATE_SAMPLE_ROWS, degenerate_notes
from nudge_core.qrels import parse_grade
from nudge_core.splits import split_from_dict
from synthetic import make_dataset


@pytest.mark.parametrize("value,expected", [
    ("d1", "'d1'"),
    ("x" * 81, "'" + "x" * 80 + "'… (81 characters)"),
    ("\ud800", "'\\ud800'"),
    ({"a": [1, 2]}, "{'a': [1, 2]}"),
    (10**5000, "<an integer of about 5,000 digits>"),
], ids=["short", "long", "surrogate", "dict", "huge-int"])
def test_excerpt(value, expected):
    assert excerpt(value) == expected
    excerpt(value).encode("utf-8")  # always printable


def test_excerpt_of_a_megabyte_is_short():
    out = excerpt("y" * 10**6)
    assert len(out) < 120 and out.endswith("… (1,000,000 characters)")


@pytest.mark.parametrize("text,line,match,at", [
    ('{"a": 1,\n"b": 2,\n"c": ' + "9" * 5000 + "}", None,
     "a number of 5,000 digits; numbers may have at most 4,300", 3),
    ('{"a": [1],\n"b": ' + "[" * 5000 + "]" * 5000 + "}", None, "nested 5,001 levels deep", 2),
    ('{"s": "[[[[\\"[[[", "t": ' + "[" * 3000 + "]" * 3000 + "}", None, "nested 3,001 levels deep", 1),
    ('{"a": ', 10, r"not valid JSON \(Expecting value\)", 10),
    ('{"a": 1}\r{"b": 2}', 4, "CR-only line ends", 4),
])
def test_parse_json_refuses_with_line(text, line, match, at):
    with pytest.raises(DataError, match=match) as info:
        parse_json(text, "f.json", line=line)
    assert info.value.line == at and info.value.source == "f.json"


def test_parse_json_accepts_deep_but_parseable():
    assert parse_json("[" * 50 + "]" * 50, "f.json") == parse_json("[" * 50 + "]" * 50, "x")


@pytest.mark.parametrize("cell,value", [("1", 1), ("0", 0), ("-3", -3), ("+2", 2), ("1.0", 1), ("2.000", 2),
                                        ("1000000", 1_000_000), ("-1000000", -1_000_000), ("007", 7)])
def test_grades_accepted(cell, value):
    assert parse_grade(cell, "q.tsv", 2) == value


@pytest.mark.parametrize("cell,match", [
    ("1e308", "'1e308' is not an integer grade"), ("0.99999999999999999", "not an integer grade"),
    ("1.5", "not an integer grade"), ("1e0", "not an integer grade"), ("1000001", "outside"),
    ("-1000001", "outside"), ("9" * 5000, "outside"), ("1_0", "not a number"), ("0x1", "not a number"),
    ("\u0661", "not a number"), ("nan", "not a number"), ("", "not a number"),
])
def test_grades_refused(cell, match):
    with pytest.raises(DataError, match=match) as info:
        parse_grade(cell, "q.tsv", 7)
    assert info.value.line == 7 and "-1,000,000 to 1,000,000" in str(info.value)
    assert len(str(info.value)) < 250


def gz_file(tmp_path, n_bytes: int):
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(gzip.compress(b"a\n" * (n_bytes // 2)))
    return path


def test_gz_cap_counts_decompressed_bytes(tmp_path):
    path = gz_file(tmp_path, 10_000)
    assert path.stat().st_size < 1000  # the file itself is far below either cap
    assert len(read_text_lines(path, max_bytes=10_000)) == 5000  # exactly at the cap: read
    with pytest.raises(DataError, match="decompresses to more than 9999 bytes"):
        read_text_lines(path, max_bytes=9_999)


def test_gz_default_cap_applies_without_max_bytes(tmp_path, monkeypatch):
    path = gz_file(tmp_path, 10_000)
    monkeypatch.setattr(files, "MAX_GZ_BYTES", 5_000)
    with pytest.raises(DataError, match="decompresses to more than 5000 bytes"):
        read_text_lines(path)
    assert len(read_text_lines(path, max_bytes=20_000)) == 5000  # an explicit cap replaces it


def small_zip(tmp_path, members: int, size: int):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(members):
            zf.writestr(f"m{i}.bin", bytes(size))
    path = tmp_path / "a.zip"
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.parametrize("limits,match", [
    (dict(max_members=4), "has 5 members, more than the limit of 4"),
    (dict(max_bytes=499), "expands to 500 bytes, more than the limit of 499 bytes"),
])
def test_zip_limits_are_keywords_and_named(tmp_path, limits, match):
    archive = small_zip(tmp_path, 5, 100)
    with pytest.raises(DataError, match=match):
        safe_extract_zip(archive, tmp_path / "out", **limits)
    assert not (tmp_path / "out").exists(), "written before the checks passed"
    safe_extract_zip(archive, tmp_path / "ok", max_members=5, max_bytes=500)
    assert len(list((tmp_path / "ok").iterdir())) == 5


def test_zip_limits_defaults():
    assert (files.MAX_ZIP_MEMBERS, files.MAX_ZIP_BYTES, files.MAX_GZ_BYTES) == (10_000, 8 * 2**30, 2**30)


def test_degenerate_notes_confirm_a_degenerate_sample_on_every_row():
    n = 3 * DEGENERATE_SAMPLE_ROWS
    sampled = set(np.linspace(0, n - 1, DEGENERATE_SAMPLE_ROWS).astype(np.int64).tolist())
    odd = next(i for i in range(n) if i not in sampled)
    rows = np.tile(np.array([[1.0, 2.0, 3.0]], np.float32), (n, 1))
    assert degenerate_notes(rows, "records")[0].startswith(f"all {n} records point in the same direction")
    rows[odd] = [3.0, 2.0, 1.0]  # a row the sample does not see
    assert degenerate_notes(rows, "records") == []


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
def test_degenerate_notes_at_any_scale(scale):
    rows = np.array([[1, 2], [2, 4], [3, 6]], np.float32) * np.float32(scale)
    assert "same direction" in degenerate_notes(rows, "records")[0]
    rows[1] = np.array([2, -4], np.float32) * np.float32(scale)
    assert degenerate_notes(rows, "records") == []


def test_split_from_dict_refuses_an_integer_too_long_to_be_an_id():
    ds = make_dataset(n_records=40, n_queries=20)
    obj = {"train": ["q0", "q1"], "val": ["q2"], "test": [10**5000]}
    with pytest.raises(DataError, match='"test" holds a number of about 5,000 digits'):
        split_from_dict(obj, ds, "upload.json")
