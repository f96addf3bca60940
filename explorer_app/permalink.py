"""The session's choices in the page address, so a reload (a new Streamlit session) keeps them.

Streamlit starts a new session on every reload, with a fresh ``session_state``. Every page run
writes the choices that can be restored into one query parameter, ``s`` (:func:`remember`):
the data source when it is the bundled example or a server dataset (by the name the server lists,
never a path), the split settings (paper or qrels split, seed, fractions, OOD check) and the
Fine-tune settings. A new session that finds ``s`` restores them (:func:`restore`) after checking
every value as the pages' own widgets would; the results are then found again in the app's
content-keyed caches and background jobs (:mod:`explorer_app.jobs`), so a finished or running fit
survives a reload. Uploads, an uploaded split file and an uploaded OOD set are not restorable
(their bytes live only in the session that received them): the page says so after a reload.

The address is user input: it is size-capped (compressed and decompressed), parsed as JSON with the
engine's parser, and only known keys of known types are taken; anything else is ignored with a
message, never executed or used as a path.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib

import streamlit as st

from nudge_core import registry
from nudge_core.errors import DataError
from nudge_core.files import parse_json
from nudge_core.runspec import CHOOSE_RULES, SpecError

from .runs import K_MAX, SEED_MAX, TEST_FRAC, VAL_FRAC

PARAM = "s"
#: Longest accepted ``s`` value (characters) and its decompressed JSON (bytes).
MAX_TEXT, MAX_JSON = 4096, 32768
VERSION = 1
SPLIT_MODES = ("paper", "qrels")  # "file" needs the uploaded split file
OOD_CHOICES = ("none", "kmeans", "bundled")  # "upload" needs the uploaded OOD set


def state_of(ss) -> dict:
    """What :func:`restore` can bring back from session state ``ss`` (JSON-able)."""
    src = ss.source
    source = {"kind": "bundled"} if src["kind"] == "bundled" else \
        {"kind": "path", "shown": src.get("shown"), "model": src.get("model")} if src["kind"] == "path" \
        else {"kind": "upload"}
    split = {k: ss.split_cfg.get(k) for k in ("mode", "seed", "val_frac", "test_frac", "ood")}
    return {"v": VERSION, "source": source, "split": split, "settings": ss.settings_cfg}


def encode(state: dict) -> str:
    """``state`` as a short URL-safe text (JSON, deflated, base64url)."""
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode("ascii").rstrip("=")


def decode(text: str) -> dict:
    """The state in ``text`` (from :func:`encode`); DataError if it is not one."""
    bad = DataError("could not be read (not a link this app made); the defaults are used",
                    "the page address's settings")
    if not isinstance(text, str) or not text or len(text) > MAX_TEXT:
        raise bad
    try:
        packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, MAX_JSON)
        if inflater.unconsumed_tail or not inflater.eof:  # larger than the cap, or cut short
            raise bad
        state = parse_json(raw.decode("utf-8"), "the page address's settings")
    except (binascii.Error, ValueError, zlib.error, UnicodeDecodeError, DataError):
        raise bad from None
    if not isinstance(state, dict) or state.get("v") != VERSION:
        raise bad
    return state


def _number(value, lo: float, hi: float, kind=float):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ValueError(value)
    return kind(value)


def _objective(value) -> str | None:
    """A validation objective the Fine-tune page can show: None, ``hit@1`` or ``family@k``."""
    if value is None or value == "hit@1":
        return value
    family, _, k = value.partition("@") if isinstance(value, str) else ("", "", "")
    if family not in ("recall", "ndcg", "mrr") or not k.isdigit() or not 1 <= int(k) <= K_MAX:
        raise ValueError(value)
    return f"{family}@{int(k)}"


def _settings(given: dict, defaults: dict) -> dict:
    """``defaults`` updated with ``given``'s values, each one the Fine-tune page's widgets accept
    (methods offered, γ within each method's bounds, parameters in their range, the objectives and
    rules offered) and the engine accepts; ValueError/SpecError otherwise (then nothing is taken)."""
    from .runs import method_settings

    cfg = json.loads(json.dumps(defaults))  # a deep copy
    offered = [n for n in registry.names() if n != registry.REFERENCE]
    methods = given.get("methods")
    if not isinstance(methods, list) or not methods or not all(m in offered for m in methods):
        raise ValueError("methods")
    cfg["methods"] = list(dict.fromkeys(methods))
    for name, g in (given.get("gamma") or {}).items():
        if name not in cfg["gamma"] or not isinstance(g, dict):
            raise ValueError(name)
        bounds = registry.get(name).gamma
        mode = g.get("mode")
        if mode not in ("automatic", "fixed", "range", "exact"):
            raise ValueError(mode)
        rng = g.get("range")
        if not isinstance(rng, list) or len(rng) != 3:
            raise ValueError("range")
        cfg["gamma"][name] = {"mode": mode, "value": _number(g.get("value"), bounds.low, bounds.high),
                              "range": [_number(x, bounds.low, bounds.high) for x in rng[:2]]
                              + [_number(rng[2], 1e-4, bounds.high)]}
    for name, params in (given.get("params") or {}).items():
        if name not in cfg["params"] or not isinstance(params, dict):
            raise ValueError(name)
        known = {p.name: p for p in registry.get(name).params}
        for key, value in params.items():
            if key not in known:
                raise ValueError(key)
            cfg["params"][name][key] = known[key].check(value)
    cfg["objective"] = _objective(given.get("objective"))
    if given.get("choose") not in CHOOSE_RULES:
        raise ValueError("choose")
    cfg["choose"] = given["choose"]
    for name in cfg["methods"]:
        method_settings(cfg, name)  # the engine's own checks, as when the form is submitted
    return cfg


def restore(ss, text: str) -> list[str]:
    """Bring the choices in ``text`` into the new session ``ss`` (already holding the defaults);
    returns what could not be restored, in words (shown on the page)."""
    from . import sources

    try:
        state = decode(text)
    except DataError as exc:
        return [str(exc)]
    said = []
    source = state.get("source") if isinstance(state.get("source"), dict) else {}
    if source.get("kind") == "path" and isinstance(source.get("shown"), str):
        model = source.get("model") if isinstance(source.get("model"), str) else None
        sources.use_server_dataset(source["shown"][:200], model)
        if ss.get("load_error"):
            said.append(f"The dataset of the previous session could not be loaded again: {ss.load_error}")
            ss.load_error = None
    elif source.get("kind") == "upload":
        said.append("The previous session used an uploaded dataset; uploads are not kept across a "
                    "reload. Upload it again on the Data page: with the same files and settings the "
                    "results are found again without refitting.")
    split = state.get("split") if isinstance(state.get("split"), dict) else {}
    try:
        cfg = dict(ss.split_cfg)
        if split.get("mode") in SPLIT_MODES:
            cfg["mode"] = split["mode"]
        cfg["seed"] = _number(split.get("seed", cfg["seed"]), 0, SEED_MAX, int)
        cfg["val_frac"] = _number(split.get("val_frac", cfg["val_frac"]), *VAL_FRAC)
        cfg["test_frac"] = _number(split.get("test_frac", cfg["test_frac"]), *TEST_FRAC)
        if split.get("ood") in OOD_CHOICES:
            cfg["ood"] = split["ood"]
        ss.split_cfg = cfg
    except ValueError:
        said.append("The split settings in the page address were not valid; the defaults are used.")
    if split.get("mode") == "file" or split.get("ood") == "upload":
        said.append("The previous session used an uploaded split file or OOD set; upload it again "
                    "on the Data page.")
    try:
        ss.settings_cfg = _settings(state.get("settings") or {}, ss.settings_cfg)
    except (ValueError, TypeError, SpecError, KeyError):
        said.append("The Fine-tune settings in the page address were not valid; the defaults are used.")
    return said


def remember(ss) -> None:
    """Write this session's restorable choices into the page address (query parameter ``s``)."""
    # written on every run, even when the server's copy already holds it: moving to another page
    # clears the address in the browser without the server's copy knowing (seen in a browser walk)
    st.query_params[PARAM] = encode(state_of(ss))


def forget() -> None:
    """Drop the choices from the page address (after a page failed with them)."""
    if PARAM in st.query_params:
        del st.query_params[PARAM]
