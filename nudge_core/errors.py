"""The one exception type the engine raises for bad input.

Every message names the file (or the Python argument), the row or line when there is one, and
what was expected, so the CLI and the app can show it as it is, without a traceback.
"""

from __future__ import annotations


class DataError(ValueError):
    """Input that the engine refuses, with where and why.

    ``source`` is a file path or an argument name (``"corpus_emb"``); ``line`` is 1-based for text
    files and ``row`` is 0-based for arrays (the numpy row index a user would type).
    """

    def __init__(self, message: str, source: str | None = None, *, line: int | None = None,
                 row: int | None = None) -> None:
        self.message = message
        self.source = source
        self.line = line
        self.row = row
        where = ""
        if source is not None:
            where = str(source)
            if line is not None:
                where += f", line {line}"
            if row is not None:
                where += f", row {row}"
            where += ": "
        super().__init__(where + message)


class SpecError(ValueError):
    """A run setting that cannot be run (``runspec``); the message names the CLI flag or the
    setting, and what is allowed."""
