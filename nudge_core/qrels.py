"""BEIR qrels files (``query-id<TAB>corpus-id<TAB>score``) and the one rule for grades: integers
from ``-MAX_GRADE`` to ``MAX_GRADE``, > 0 = relevant."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from .errors import DataError
from .files import cr_only_hint, excerpt, read_text_lines

#: Grades are integers from ``-MAX_GRADE`` to ``MAX_GRADE`` (> 0 = relevant).
MAX_GRADE = 1_000_000
#: A decimal number as written in a qrels file (float() alone would take "1_0", "nan", "١").
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)
#: An integer grade as written in a qrels file: ASCII digits, optionally ".0…" (pandas writes 1.0).
_INTEGER = re.compile(r"([+-]?\d+)(\.0*)?", re.ASCII)
_GRADE_RANGE = f"{-MAX_GRADE:,} to {MAX_GRADE:,}"


def parse_grade(cell: str, source: str, line: int) -> int:
    """The integer grade written in a qrels ``cell``: ASCII digits with an optional sign (``"1.0"``
    is 1), from -MAX_GRADE to MAX_GRADE. ``1e3``, ``0.99999999999999999``, ``1_0``, ``0x1``, ``١``,
    ``nan`` are refused."""
    found = _INTEGER.fullmatch(cell)
    if found is None:  # float() would also take "1_0" (= 10), "nan", "inf", "١"
        kind = "not an integer grade" if _NUMBER.fullmatch(cell) else "not a number"
        raise DataError(f"score {excerpt(cell)} is {kind}; expected an integer grade from "
                        f"{_GRADE_RANGE} (digits 0-9)", source, line=line)
    digits = found.group(1).lstrip("+-").lstrip("0")
    value = int(found.group(1)) if len(digits) <= len(str(MAX_GRADE)) else MAX_GRADE + 1
    if abs(value) > MAX_GRADE:
        raise DataError(f"score {excerpt(cell)} is outside the allowed grades, {_GRADE_RANGE}", source,
                        line=line)
    return value


def check_grade(value: object, source: str) -> int:
    """An integer grade given from Python (int, numpy integer, or a float with an integer value)
    within -MAX_GRADE..MAX_GRADE."""
    whole = isinstance(value, (int, np.integer)) or (
        isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer())
    if not whole or abs(int(value)) > MAX_GRADE:
        raise DataError(f"grade {excerpt(value)}; expected an integer from {_GRADE_RANGE}", source)
    return int(value)


def read_qrels(path: Path, max_bytes: int | None = None,
               line_of: dict[tuple[str, str], int] | None = None) -> dict[str, dict[str, int]]:
    """``{query_id: {corpus_id: grade}}`` from a BEIR qrels TSV with header ``query-id corpus-id score``.

    Grades are integers, see :func:`parse_grade`. A repeated (query, record) pair is an
    error. Rows keep their file order, so the order of first appearance of queries is preserved.
    ``line_of``, when given, is filled with each (query, record) pair's line number (for messages).
    """
    lines = read_text_lines(path, max_bytes)
    if not lines:
        raise DataError("the qrels file is empty; expected a header 'query-id<TAB>corpus-id<TAB>score'",
                        str(path))
    header = lines[0].split("\t")
    if [h.strip().lower() for h in header] != ["query-id", "corpus-id", "score"]:
        raise DataError(f"expected the header 'query-id<TAB>corpus-id<TAB>score', found "
                        f"{excerpt(lines[0])}{cr_only_hint(lines[0])}", str(path), line=1)
    qrels: dict[str, dict[str, int]] = {}
    for number, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        cells = raw.split("\t")
        if len(cells) != 3:
            raise DataError(f"expected 3 tab-separated columns, found {len(cells)}{cr_only_hint(raw)}",
                            str(path), line=number)
        qid, did, score = (c.strip() for c in cells)
        if not qid or not did:
            raise DataError("empty query-id or corpus-id", str(path), line=number)
        grade = parse_grade(score, str(path), number)
        judged = qrels.setdefault(qid, {})
        if did in judged:
            raise DataError(f"duplicate judgement for query {excerpt(qid)} and record {excerpt(did)}",
                            str(path), line=number)
        judged[did] = grade
        if line_of is not None:
            line_of[(qid, did)] = number
    if not qrels:
        raise DataError("the qrels file has a header but no judgements", str(path))
    return qrels
