"""Where the app keeps files on the server, and which server folders it may read.

**Uploads** go into one folder root per server process, ``<tmp>/nudge-explorer-<pid>-<random>/``,
holding one ``session-<random>`` folder per browser session. A session's folder is removed when
Streamlit drops the session's state, the process's root when the process exits, and the roots of
server processes that are no longer running when the next process first needs its own (so a
killed server leaves nothing behind for long).

**Server datasets** are only the folders (holding ``emb/``) and ``.zip`` files directly under an
allowed root: the folders named in ``$NUDGE_DATA_DIRS`` (``os.pathsep``-separated); when the
variable is unset, ``../shared/datasets`` beside the checkout if it exists (development), else none.
An empty ``NUDGE_DATA_DIRS=`` turns server datasets off. A chosen dataset is resolved (symlinks
followed) and must stay inside an allowed root and away from the upload area; nothing a user
types is ever resolved as a path.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import stat
import tempfile
import threading
import weakref
import zipfile
from pathlib import Path

from nudge_core import DataError
from nudge_core.data import available_models
from nudge_core.files import dataset_root

#: The environment variable listing the server folders whose datasets the app offers.
DATA_DIRS_ENV = "NUDGE_DATA_DIRS"
REPO = Path(__file__).resolve().parents[1]
#: Offered when $NUDGE_DATA_DIRS is unset and this folder exists (a development checkout).
DEV_DATASETS = REPO.parent / "shared" / "datasets"
ROOT_PREFIX = "nudge-explorer-"
_ROOT_NAME = re.compile(re.escape(ROOT_PREFIX) + r"(\d+)-\w+")
#: Names of temporary folders that hold uploads (this version's and earlier versions').
_UPLOAD_AREA = re.compile(r"nudge-(explorer|session|zip)-")
#: At most this many entries of one root are listed.
MAX_LISTED = 500

_lock = threading.Lock()
_root: Path | None = None


# ---------------------------------------------------------------- the upload area
def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no cheap check: never clear
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, under another user
        return True
    return True


def clear_stale_roots(base: str | Path | None = None) -> list[Path]:
    """Remove the upload roots under ``base`` (default: the temporary folder) of server
    processes that no longer run; only folders this user owns. Returns what it removed."""
    base = Path(base or tempfile.gettempdir())
    removed = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for path in entries:
        match = _ROOT_NAME.fullmatch(path.name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        try:
            info = path.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        if not _pid_alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def process_root() -> Path:
    """This server process's upload root (created on first use, after clearing stale ones)."""
    global _root
    with _lock:
        if _root is None or not _root.is_dir():
            clear_stale_roots()
            _root = Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-"))
            atexit.register(shutil.rmtree, str(_root), True)
        return _root


class SessionFolder:
    """A session's private upload folder, deleted when the session's state is dropped.

    Streamlit discards a session's ``session_state`` some time after its browser disconnects; the
    ``weakref.finalize`` then removes the folder (and at the latest when the server exits).
    """

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="session-", dir=process_root()))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)


def _temp_dirs() -> list[Path]:
    tmp = Path(tempfile.gettempdir())
    return list(dict.fromkeys([tmp, tmp.resolve()]))


def _inside_uploads(path: Path) -> bool:
    return any(tmp in path.parents and _UPLOAD_AREA.match(path.relative_to(tmp).parts[0])
               for tmp in _temp_dirs())


def in_upload_area(path: Path) -> bool:
    """Whether resolved ``path`` is, holds, or lies inside a folder that may hold uploads."""
    return _inside_uploads(path) or any(path == tmp or path in tmp.parents for tmp in _temp_dirs())


def scrub(text: str) -> str:
    """``text`` with any path into the upload area cut to ``upload`` and the checkout's path
    made relative: the last line of defence before a message reaches the browser."""
    for tmp in _temp_dirs():
        text = re.sub(re.escape(str(tmp)) + r"/nudge-[\w-]+(/session-\w+)?", "upload", text)
    return text.replace(str(REPO) + os.sep, "")


# ---------------------------------------------------------------- datasets on the server
def allowed_roots() -> list[Path]:
    """The resolved folders whose datasets this server offers (see the module docstring)."""
    env = os.environ.get(DATA_DIRS_ENV)
    if env is None:
        candidates = [DEV_DATASETS] if DEV_DATASETS.is_dir() else []
    else:
        candidates = [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    roots: list[Path] = []
    for cand in candidates:
        try:
            root = cand.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if root.is_dir() and not _inside_uploads(root) and root not in roots:
            roots.append(root)
    return roots


def allowed_dataset(path: str | Path) -> Path:
    """``path`` resolved, if it is a dataset folder or .zip inside an allowed root (and outside
    the upload area); else DataError naming only its last part."""
    name = Path(path).name
    refused = DataError("is not among the datasets this server offers", name)
    try:
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):
        raise refused from None
    roots = [r for r in allowed_roots() if r in real.parents]
    if not roots or in_upload_area(real):
        raise refused
    if real.is_dir():
        inner = dataset_root(real).resolve()
        if not any(r == inner or r in inner.parents for r in roots) or in_upload_area(inner):
            raise refused
    elif not (real.is_file() and real.suffix.lower() == ".zip"):
        raise refused
    return real


def _looks_like_dataset(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".zip"
    try:
        return (dataset_root(path) / "emb").is_dir()
    except OSError:
        return False


def server_datasets() -> dict[str, Path]:
    """The datasets this server offers: a name to show -> the resolved path."""
    roots = allowed_roots()
    found: dict[str, Path] = {}
    for root in roots:
        try:
            entries = sorted(root.iterdir())[:MAX_LISTED]
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                real = allowed_dataset(entry)
            except DataError:
                continue
            if not _looks_like_dataset(real):
                continue
            shown = entry.name if len(roots) == 1 else f"{root.name}/{entry.name}"
            while shown in found:
                shown += "'"
            found[shown] = real
    return found


def zip_models(archive) -> list[str]:
    """The embedding sets (``emb/<model>/``) a zip holds at its shallowest ``emb/``, without
    extracting it; [] when it is not a readable zip. ``archive``: a path or a binary file."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return []
    found: dict[int, set[str]] = {}
    for name in names:
        parts = name.replace("\\", "/").split("/")
        for i, part in enumerate(parts[:-2]):
            if part == "emb" and parts[i + 1]:
                found.setdefault(i, set()).add(parts[i + 1])
                break
    return sorted(found[min(found)]) if found else []


def models_in(path: Path) -> list[str]:
    """The embedding sets of a dataset folder or .zip on the server."""
    if path.is_file():
        return zip_models(path)
    return available_models(dataset_root(path))
