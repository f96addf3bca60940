"""Records of the bundled example: the documented public API of the running Python's standard library.

The example dataset ``sample_data/stdlib`` stores record *ids* and embeddings only, never copied
documentation. The text of a record is rebuilt, at build time and at display time alike, from the
running interpreter with :mod:`inspect`:

* :func:`list_records` enumerates every public module, class, function and method (plus Python
  ``property`` objects) of the standard library that carries its own non-empty docstring, as sorted
  qualified names (``json.dumps``, ``pathlib.Path.read_text``, ``str.split`` for built-ins);
* :func:`record_text` gives the text that was embedded for one id (qualified name, signature where
  :func:`inspect.signature` has one, then the cleaned docstring, capped in length), or ``None`` when the
  running Python lacks that record (another version, a platform-only module, a removed API).

Everything is deterministic for a given interpreter: module names, attribute names and output are
sorted; object addresses and set reprs in signatures are masked; nothing depends on hash order.
This module imports no third-party package; it imports standard-library modules lazily, skipping
ones with side effects on import (``antigravity``, ``this``), GUI and IDE packages (``tkinter``,
``turtle``, ``idlelib``), test suites, and modules deprecated by PEP 594 / removed in 3.12–3.13 (so
that the ids mostly survive a newer interpreter).
"""

from __future__ import annotations

import builtins
import functools
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

__all__ = ["list_records", "record_text", "rebuilt_texts", "is_bundled", "BUNDLED_DIR", "SKIP_MODULES", "MAX_DOC_CHARS"]

#: Top-level modules never imported or listed: side effects on import, GUI/IDE, test suites,
#: packaging internals, platform aliases, deprecated (PEP 594, removed in 3.12/3.13) or noisy.
SKIP_MODULES = frozenset({
    # side effects / GUI / IDE / interactive
    "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "readline", "rlcompleter",
    # test suites and packaging internals
    "test", "lib2to3", "ensurepip", "pydoc_data", "xxlimited", "xxlimited_35", "xxsubtype",
    "distutils", "venv",
    # platform-specific aliases of os.path, internal regex modules, codec tables
    "posixpath", "ntpath", "genericpath", "nturl2path", "sre_compile", "sre_parse", "sre_constants",
    "encodings", "opcode", "keyword", "token", "symtable", "pyexpat",
    # Windows / platform-only
    "msilib", "msvcrt", "winreg", "winsound", "nt", "posix",
    # deprecated by PEP 594 (removed in 3.13) or removed in 3.12
    "aifc", "asynchat", "asyncore", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "imp",
    "mailcap", "nis", "nntplib", "ossaudiodev", "pipes", "smtpd", "sndhdr", "spwd", "sunau",
    "telnetlib", "uu", "xdrlib",
})

#: Submodule path components that mark test suites or scripts: never imported.
_SKIP_PARTS = frozenset({"test", "tests", "idle_test", "__main__"})

#: Built-in names left out (site-added helpers and interactive-only objects).
_SKIP_BUILTINS = frozenset({"copyright", "credits", "license", "exit", "quit", "help"})

#: Docstring characters kept in a record's text (the model reads at most 256 word pieces anyway).
MAX_DOC_CHARS = 1000
_MAX_SIG_CHARS = 300

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _stdlib_names() -> list[str]:
    names = getattr(sys, "stdlib_module_names", None)
    if names is None:  # Python < 3.10
        raise RuntimeError("the stdlib example needs Python >= 3.10 (sys.stdlib_module_names)")
    return sorted(n for n in names if not n.startswith("_") and n not in SKIP_MODULES)


def _allowed_module(name: str) -> bool:
    parts = name.split(".")
    if parts[0] not in getattr(sys, "stdlib_module_names", ()) or parts[0] in SKIP_MODULES:
        return False
    return not any(p.startswith("_") or p in _SKIP_PARTS for p in parts)


#: ``warnings.catch_warnings`` swaps the process-wide filter list and puts the saved one back on
#: exit, so two threads inside it at once (the app fits model fine-tuning in a worker thread while
#: another session may rebuild these texts) could leave the other's "ignore" in place for good.
#: One lock makes the swaps nest one at a time; other threads may still miss a warning meanwhile.
_QUIET = threading.RLock()


@contextmanager
def _quietly():
    """Warnings ignored inside (importing and inspecting old modules raises DeprecationWarnings)."""
    with _QUIET, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _import(name: str):
    """Import a standard-library module quietly; None if it is missing or fails."""
    if not _allowed_module(name):
        return None
    try:
        with _quietly():
            return importlib.import_module(name)
    except BaseException:  # ImportError, OSError, platform errors, SystemExit from odd modules
        return None


def _own_doc(obj) -> str | None:
    """The object's own docstring (not one inherited from a base class), cleaned, or None.

    A class without a docstring of its own falls back to its own Python ``__init__``'s docstring.
    """
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    try:
        if inspect.isclass(obj):
            doc = obj.__dict__.get("__doc__")
            if doc is not None and not isinstance(doc, str):  # C types: a descriptor (property, type)
                doc = getattr(obj, "__doc__", None)
            init = obj.__dict__.get("__init__")
            if not (isinstance(doc, str) and doc.strip()) and inspect.isfunction(init):
                doc = init.__doc__  # a class documented through its constructor
        else:
            doc = getattr(obj, "__doc__", None)
    except Exception:
        return None
    if not isinstance(doc, str):
        return None
    doc = inspect.cleandoc(doc).strip()
    return doc or None


def _is_record_member(value) -> bool:
    """Class-dictionary entries that count as methods: functions, method descriptors, properties."""
    return (inspect.isfunction(value) or inspect.isbuiltin(value)
            or isinstance(value, (staticmethod, classmethod, property))
            or (inspect.ismethoddescriptor(value) and type(value).__name__ in
                ("method_descriptor", "classmethod_descriptor")))


def _class_members(cls: type) -> dict:
    """Public members of a class: its own ``__dict__`` plus what it inherits from private base classes
    written in Python (``argparse.ArgumentParser.add_argument`` lives in ``argparse._ActionsContainer``;
    ``ipaddress.IPv4Network.hosts`` in ``ipaddress._BaseNetwork``; ``pathlib.Path.read_text`` moved to a
    private base in 3.13). The walk along the MRO stops at the first public base; bases from C
    implementation modules (``_io``, ``_ssl``) are not absorbed, to avoid dozens of duplicates."""
    members = {k: v for k, v in cls.__dict__.items() if isinstance(k, str) and not k.startswith("_")}
    for base in cls.__mro__[1:]:
        if not base.__name__.startswith("_") or str(base.__module__).startswith("_"):
            break
        for k, v in base.__dict__.items():
            if isinstance(k, str) and not k.startswith("_") and k not in members:
                members[k] = v
    return members


def _is_record_object(value) -> bool:
    """Module-level records: classes, functions, and bound methods of a module-level instance
    (``random.choice`` is ``random._inst.choice``; ``multiprocessing.Pool`` a context method)."""
    return (inspect.isclass(value) or inspect.isfunction(value) or inspect.isbuiltin(value)
            or (inspect.ismethod(value) and not inspect.isclass(value.__self__)
                and not inspect.ismodule(value.__self__)))


def _public_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if not isinstance(names, (list, tuple)):
        names = [n for n in dir(module)
                 if _defined_here(module, getattr(module, n, None))]
    return sorted({n for n in names if isinstance(n, str) and not n.startswith("_")})


def _defined_here(module, value) -> bool:
    """Without ``__all__``: keep objects whose home is this module or a private helper module."""
    home = getattr(value, "__module__", None)
    if not isinstance(home, str):
        return False
    return (home == module.__name__ or home.startswith(module.__name__ + ".")
            or home.split(".")[-1].startswith("_"))


def _walk_modules() -> list[str]:
    """Every importable public stdlib module name (packages walked recursively), sorted."""
    import pkgutil

    found: set[str] = set()
    pending = _stdlib_names()
    while pending:
        name = pending.pop()
        module = _import(name)
        if module is None:
            continue
        found.add(name)
        if name == "os":
            found.add("os.path")
        paths = getattr(module, "__path__", None)
        if paths:
            for info in pkgutil.iter_modules(list(paths)):
                child = f"{name}.{info.name}"
                if _allowed_module(child):
                    pending.append(child)
    return sorted(found)


def _signature(obj, name: str) -> str:
    """``inspect.signature`` as text with unstable default reprs masked; '' when there is none."""
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, property) or inspect.ismodule(obj):
        return ""
    try:
        with _quietly():
            sig = inspect.signature(obj)
    except Exception:
        return ""
    params = []
    for p in sig.parameters.values():
        if p.default is not inspect.Parameter.empty:
            d = p.default
            text = repr(d) if not isinstance(d, (set, frozenset, dict)) else "..."
            if text.startswith("<") or len(text) > 40 or _ADDRESS.search(text):
                p = p.replace(default=_Masked())
        params.append(p)
    try:
        text = str(sig.replace(parameters=params))
    except Exception:
        return ""
    text = _ADDRESS.sub("", text)
    if len(text) > _MAX_SIG_CHARS:
        text = text[:_MAX_SIG_CHARS].rstrip() + "...)"
    return text


class _Masked:
    def __repr__(self) -> str:
        return "..."


def _resolve(qualname: str):
    """(owner, object) for a qualified name in this interpreter, or None. Never imports non-stdlib."""
    parts = qualname.split(".")
    if not parts or any(not p or p.startswith("_") for p in parts):
        return None
    top = parts[0]
    if top in getattr(sys, "stdlib_module_names", ()) and top not in SKIP_MODULES:
        obj = None
        for i in range(len(parts), 0, -1):
            modname = ".".join(parts[:i])
            if modname in sys.modules or i == 1 or _allowed_module(modname):
                mod = sys.modules.get(modname) or _import(modname)
                if mod is not None:
                    obj, rest = mod, parts[i:]
                    break
        if obj is None:
            return None
    elif top in _SKIP_BUILTINS or not hasattr(builtins, top):
        return None
    else:
        obj, rest = getattr(builtins, top), parts[1:]
        if rest == [] and not inspect.isclass(obj) and not inspect.isbuiltin(obj):
            return None
    owner = None
    for part in rest:
        owner = obj
        if inspect.isclass(obj):
            members = _class_members(obj)
            if part not in members:
                return None
            obj = members[part]
        else:
            try:
                obj = getattr(obj, part)
            except Exception:
                return None
    return owner, obj


def record_text(qualname: str) -> str | None:
    """The text embedded for a record, rebuilt from the running interpreter; None if it lacks it.

    Text = qualified name followed by the signature where :func:`inspect.signature` gives one (on
    the same line), a newline, then the record's own cleaned docstring cut to :data:`MAX_DOC_CHARS`
    characters (at a paragraph or word boundary). Returns None when the name does not resolve in this
    Python, resolves to something that is not a module/class/function/method/property, or has no
    docstring of its own.
    """
    try:
        found = _resolve(qualname)
    except Exception:
        return None
    if found is None:
        return None
    owner, obj = found
    if owner is None or inspect.ismodule(owner):
        if not (inspect.ismodule(obj) or _is_record_object(obj)):
            return None
    elif not (inspect.isclass(owner) and _is_record_member(obj)):
        return None
    doc = _own_doc(obj)
    if doc is None:
        return None
    if len(doc) > MAX_DOC_CHARS:
        cut = doc[:MAX_DOC_CHARS]
        para = cut.rfind("\n\n")
        doc = cut[:para] if para > MAX_DOC_CHARS // 2 else cut[:cut.rfind(" ")] + " ..."
    head = qualname if inspect.ismodule(obj) else qualname + _signature(obj, qualname)
    return f"{head}\n{doc}"


def _candidates() -> dict[int, list[tuple[int, int, int, str]]]:
    """id(object) -> [(depth, not-home, not-own-name, name)] for every public module-level record."""
    seen: dict[int, list[tuple[int, int, int, str]]] = {}
    keep: list = []  # hold references so ids stay unique during the walk

    def add(obj, name: str, home_ok: bool) -> None:
        keep.append(obj)
        own = getattr(obj, "__name__", None) == name.rsplit(".", 1)[-1]
        seen.setdefault(id(obj), []).append((name.count("."), 0 if home_ok else 1,
                                             0 if own else 1, name))

    for name in sorted(n for n in dir(builtins) if not n.startswith("_") and n not in _SKIP_BUILTINS):
        value = getattr(builtins, name)
        if _is_record_object(value):
            add(value, name, True)
    for modname in _walk_modules():
        module = sys.modules.get(modname) or _import(modname)
        if module is None:
            continue
        add(module, modname, True)
        for attr in _public_names(module):
            try:
                value = getattr(module, attr)
            except Exception:
                continue
            if _is_record_object(value) and not inspect.ismodule(value):
                home = getattr(value, "__module__", "") or ""
                add(value, f"{modname}.{attr}", home == modname)
    return seen


@functools.lru_cache(maxsize=1)
def _list_records() -> tuple[str, ...]:
    names: set[str] = set()
    for entries in _candidates().values():
        # shortest public path, then its home module, then the object's own __name__, then a-z
        names.add(min(entries)[3])
    out: set[str] = set()
    bound: set[int] = set()  # functions already listed as module-level bound methods
    classes: list[tuple[str, type]] = []
    for name in sorted(names):
        if record_text(name) is None:
            continue
        out.add(name)
        found = _resolve(name)
        obj = found[1] if found else None
        if inspect.isclass(obj):
            classes.append((name, obj))
        elif inspect.ismethod(obj):
            bound.add(id(obj.__func__))
    for name, obj in classes:
        members = _class_members(obj)
        for attr in sorted(members):
            member = members[attr]
            if id(getattr(member, "__func__", member)) in bound:
                continue  # random.Random.choice is listed as random.choice
            qual = f"{name}.{attr}"
            if record_text(qual) is not None:
                out.add(qual)
    return tuple(sorted(out))


def list_records() -> list[str]:
    """Every documented public stdlib module, class, function and method here, as sorted qualified names.

    A name is public when no component starts with an underscore; a module's public names are its
    ``__all__`` or, without one, the attributes defined in it (or in a private helper module). An
    object reachable under several names is listed once, under its shortest public path
    (``asyncio.gather``, not ``asyncio.tasks.gather``; ``open``, not ``io.open``). Methods are the
    public functions, method descriptors, static/class methods and properties in a class's own
    ``__dict__`` or inherited from a private Python base (see :func:`_class_members`), skipping
    those already listed as a module-level bound method (``random.Random.choice`` appears as
    ``random.choice``). Only entries with their own non-empty docstring are listed, and every name
    satisfies ``record_text(name) is not None``. Deterministic for a given interpreter.
    """
    return list(_list_records())


#: The bundled example's folder in a checkout (``sample_data/stdlib``): the one dataset whose
#: record texts are rebuilt by :func:`record_text` rather than read from a ``corpus.jsonl``.
BUNDLED_DIR = Path(__file__).resolve().parents[2] / "sample_data" / "stdlib"


def is_bundled(dataset) -> bool:
    """``dataset`` was loaded from the bundled example's folder (its texts can be rebuilt)."""
    source = getattr(dataset, "source", None)
    return bool(source) and Path(source).resolve() == BUNDLED_DIR.resolve()


def rebuilt_texts(dataset) -> dict[str, str] | None:
    """record id -> text for the bundled example (``dataset.source`` is :data:`BUNDLED_DIR`),
    rebuilt by :func:`record_text` (ids the running Python lacks are left out); None for any
    other dataset. Takes a few seconds (it imports the standard library), so it is called only
    where texts are needed (model fine-tuning), never on load."""
    if not is_bundled(dataset):
        return None
    # in a fresh interpreter: a library imported into this one may have patched the standard
    # library (torch.package replaces inspect.getfile, whose record then lost its text), and the
    # imports and warning filters stay out of the app's process
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "nudge_core.examples.stdlib_docs"], env=env,
                          input="\n".join(dataset.corpus_ids), capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"rebuilding the bundled example's texts failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def _print_texts() -> None:
    """``python -m nudge_core.examples.stdlib_docs`` < ids (one per line): the JSON object
    record id -> :func:`record_text` of the ids this interpreter has (see :func:`rebuilt_texts`)."""
    texts = {rid: record_text(rid) for rid in sys.stdin.read().split("\n") if rid}
    json.dump({rid: text for rid, text in texts.items() if text}, sys.stdout)


if __name__ == "__main__":
    _print_texts()
