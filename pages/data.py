"""Data: choose a dataset, see its validation report and facts, choose how queries are split."""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from nudge_core import DataError
from nudge_core.exports import dataset_facts
from nudge_core.uploads import (LOOSE_HELP, content_hash, folder_hash, load_uploaded_dataset,
                                load_uploaded_queries)
from pages import common

common.ensure_app()

st.title("1 · Data")
st.markdown(
    "A retrieval dataset is a set of **records** (documents) and **queries**, each turned into a "
    "vector by the same embedding model, plus judgements saying which records answer which query. "
    "Pick a dataset here; the report below says what was loaded (or exactly what is wrong with a "
    "file), and the split controls decide which queries NUDGE learns from (train), which pick its "
    "bound γ (validation) and which measure the result (test).")

ss = st.session_state
src = ss.source
example = common.example_path()
KINDS = {"bundled": "Bundled example", "path": "Dataset folder on the server", "upload": "Upload"}
kind = st.radio("Where is the data?", list(KINDS), format_func=KINDS.get, horizontal=True,
                index=list(KINDS).index(src["kind"]))

if kind == "bundled":
    st.caption(f"The bundled example lives at `{common._cli_path(example)}`.")
    if src["kind"] != "bundled":
        ss.source = {"kind": "bundled", "path": str(example), "model": None,
                     "label": f"bundled example ({example.name})", "cli_arg": common._cli_path(example)}
elif kind == "path":
    default = src["path"] if src["kind"] == "path" else ""
    path = st.text_input("Folder (or .zip) on the server", value=default,
                         placeholder="/data/my-dataset")
    models = common.models_at(path) if path else []
    model = st.selectbox("Embedding set", models) if len(models) > 1 else None
    if st.button("Load folder", type="primary", disabled=not path):
        try:
            if not Path(path).exists():
                raise DataError("no such file or folder", path)
            ds = common._load_path(folder_hash(path), path, model)
            ss.source = {"kind": "path", "path": path, "model": model, "key": folder_hash(path),
                         "label": f"{Path(path).name} (server folder)", "cli_arg": path}
            ss.load_error = None
        except DataError as exc:
            ss.load_error = str(exc)
else:
    st.markdown(f"Upload **one .zip** of a dataset folder (layout: `qrels/*.tsv`, "
                f"`emb/<model>/corpus.npy`, `queries.npy`, `corpus_ids.txt`, `query_ids.txt`, "
                f"optional `corpus.jsonl`, `queries.jsonl`) **or loose files**: {LOOSE_HELP}. "
                f"Each file may be up to **{common.upload_limit_mb()} MB**. Uploads stay private to "
                "this browser session.")
    files = st.file_uploader("Dataset files", accept_multiple_files=True, key="dataset_upload",
                             type=["zip", "npy", "txt", "tsv", "jsonl", "gz"])
    if files:
        items = [(f.name, f.getvalue()) for f in files]
        key = content_hash(items)
        if not ss.upload or ss.upload["key"] != key:
            folder = common.session_dir() / key[:16]
            try:
                ds = load_uploaded_dataset(items, folder)
                if ss.upload:
                    common.discard_upload_folder(ss.upload["folder"])
                ss.upload = {"key": key, "dataset": ds, "name": ds.name, "folder": str(folder)}
                ss.source = {"kind": "upload", "path": None, "model": None, "key": key,
                             "label": f"upload: {ds.name}", "cli_arg": f"<your {ds.name} folder>"}
                ss.load_error = None
            except DataError as exc:
                from nudge_core.uploads import tidy_message
                ss.load_error = tidy_message(str(exc), folder)
                common.discard_upload_folder(folder)
        elif ss.source["kind"] != "upload":
            ss.source = {"kind": "upload", "path": None, "model": None, "key": key,
                         "label": f"upload: {ss.upload['name']}",
                         "cli_arg": f"<your {ss.upload['name']} folder>"}

if ss.load_error:
    st.error(ss.load_error, icon=":material/error:")
    st.caption("The previous dataset stays in use until a valid one loads.")

ds, src = common.current_dataset()
if ds is None:
    st.stop()

st.subheader("Validation report")
st.success(f"Loaded **{src['label']}**: {ds.n_records:,} records of dimension {ds.dim}, "
           f"{len(ds.labelled_ids):,} labelled queries, model `{ds.model}`.", icon=":material/check_circle:")
for note in ds.notes:
    st.info(note.replace(str(common.ROOT) + "/", ""), icon=":material/info:")

st.subheader("How queries are split")
cfg = dict(ss.split_cfg)
MODES = {"paper": "Paper protocol (one random permutation: ~70 / 10 / 20)",
         "file": "Upload a split file (JSON)"}
if {"train", "test"} <= set(ds.qrels_files):
    MODES["qrels"] = "The dataset's own qrels files (train.tsv / test.tsv)"
if cfg["mode"] not in MODES:
    cfg["mode"] = "paper"
c1, c2 = st.columns([2, 3])
with c1:
    cfg["mode"] = st.radio("Split", list(MODES), format_func=MODES.get,
                           index=list(MODES).index(cfg["mode"]))
    cfg["seed"] = int(st.number_input("Seed (permutation and k-means)", 0, 10_000, int(cfg["seed"])))
    if cfg["mode"] == "paper":
        cfg["val_frac"] = st.slider("Validation share", 0.05, 0.4, float(cfg["val_frac"]), 0.05)
        cfg["test_frac"] = st.slider("Test share", 0.05, 0.5, float(cfg["test_frac"]), 0.05)
    elif cfg["mode"] == "file":
        st.caption('A JSON object {"train": [...], "val": [...], "test": [...]} of query ids '
                   '("ood" optional).')
        up = st.file_uploader("Split file", type=["json"], key="split_upload")
        if up is not None:
            try:
                obj = json.loads(up.getvalue().decode("utf-8-sig"))
                cfg["split_obj"], cfg["split_name"] = obj, up.name
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                st.error(f"{up.name}: not valid JSON ({exc})", icon=":material/error:")
        if cfg.get("split_obj") is None:
            st.warning("No split file yet; using the paper protocol until one is uploaded.")
with c2:
    OODS = {"none": "No OOD check", "kmeans": "k-means split (2 clusters of training queries)"}
    if common.bundled_ood_dir(src) is not None:
        OODS["bundled"] = "The dataset's OOD query set (ood/ folder)"
    OODS["upload"] = "Upload an OOD query set"
    if cfg["ood"] not in OODS:
        cfg["ood"] = "none"
    cfg["ood"] = st.radio("Out-of-distribution check", list(OODS), format_func=OODS.get,
                          index=list(OODS).index(cfg["ood"]))
    if cfg["ood"] == "kmeans":
        st.caption("k-means on the training queries; NUDGE learns from cluster 0 only, cluster 1's "
                   "test queries are the OOD set (the authors' protocol).")
    if cfg["ood"] == "upload":
        st.caption("A .zip of a query-set folder (emb/<model>/queries.npy, query_ids.txt, "
                   "qrels/*.tsv) or those loose files; record ids must exist in this dataset.")
        files = st.file_uploader("OOD query set", accept_multiple_files=True, key="ood_upload_w",
                                 type=["zip", "npy", "txt", "tsv", "jsonl"])
        if files:
            items = [(f.name, f.getvalue()) for f in files]
            key = content_hash(items)
            current = ss.ood_upload
            if not current or current["key"] != key or current["data_key"] != common.data_key():
                folder = common.session_dir() / ("ood-" + key[:16])
                common.discard_upload_folder(folder)  # never write over files a result may map
                if current and current.get("folder") != str(folder):
                    common.discard_upload_folder(current.get("folder"))  # replaced either way
                try:
                    extra = load_uploaded_queries(items, folder, ds)
                    ss.ood_upload = {"key": key, "queries": extra, "data_key": common.data_key(),
                                     "folder": str(folder)}
                except DataError as exc:
                    from nudge_core.uploads import tidy_message
                    ss.ood_upload = None
                    st.error(tidy_message(str(exc), folder), icon=":material/error:")
                    common.discard_upload_folder(folder)
        if ss.ood_upload:
            st.success(f"OOD set: {len(ss.ood_upload['queries'].queries)} labelled queries.")
effective = dict(cfg)
if effective["mode"] == "file" and effective.get("split_obj") is None:
    effective["mode"] = "paper"
ss.split_cfg = effective

split = common.current_split(ds)
st.subheader("Dataset facts")
texts = None
if not ds.corpus_text and common.text_lookup(ds, src) is not None:
    texts = "rebuilt from the running Python's docstrings"
facts = dataset_facts(ds, split, texts)
st.dataframe(facts, hide_index=True, width="stretch", height=35 * (len(facts) + 1) + 3)
if split is not None:
    st.caption(f"Split: {split.description}.")
    st.page_link("pages/finetune.py", label="Next: fine-tune", icon=":material/arrow_forward:")
