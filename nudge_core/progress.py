"""The one progress-callback type of the engine.

Long engine calls (a run, a sweep, a map) take ``progress(fraction, message)``: ``fraction`` in
[0, 1], ``message`` a short phrase for a progress bar or a log line. ``None`` means silent.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None]


def silent(fraction: float, message: str) -> None:
    """A progress callback that reports nothing."""


def or_silent(progress: Progress | None) -> Progress:
    return progress if progress is not None else silent
