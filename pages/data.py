"""Data: choose a dataset, see its validation report and facts, choose how queries are split."""

from __future__ import annotations

import streamlit as st

from explorer_app import folders, ood_sets, runs, session, sources
from explorer_app.uploads import LOOSE_HELP, read_split_file
from explorer_app.widgets import page_errors, replacing_uploader, show_error
from nudge_core import DataError
from nudge_core.exports import dataset_facts

session.boot()
with page_errors():  # the page's one error boundary: tracebacks go to the log
    st.title("1 · Data")
    st.markdown(
        "A retrieval dataset is a set of **records** (documents) and **queries**, each turned into a "
        "vector by the same embedding model, plus judgements saying which records answer which query. "
        "Pick a dataset here; the report below says what was loaded (or exactly what is wrong with a "
        "file), and the split controls decide which queries NUDGE learns from (train), which pick its "
        "bound γ (validation) and which measure the result (test).")

    ss = st.session_state
    src = ss.source
    example = sources.example_path()
    KINDS = {"bundled": "Bundled example", "path": "Dataset on the server", "upload": "Upload"}
    kind = st.radio("Where is the data?", list(KINDS), format_func=KINDS.get, horizontal=True,
                    index=list(KINDS).index(src["kind"]))

    if kind == "bundled":
        st.caption(f"The bundled example lives at `{sources.cli_path(example)}`.")
        if src["kind"] != "bundled":
            sources.use_bundled()
    elif kind == "path":
        offered = list(folders.server_datasets())
        if not offered:
            st.info(f"This server offers no datasets of its own. Its operator can name folders in "
                    f"`${folders.DATA_DIRS_ENV}`; every dataset folder or .zip directly inside them is "
                    "then offered here. Or upload yours.", icon=":material/info:")
        else:
            current = src.get("shown") if src["kind"] == "path" else None
            shown = st.selectbox("Dataset on the server", offered,
                                 index=offered.index(current) if current in offered else 0)
            models = sources.server_models(shown)
            model = st.selectbox("Embedding set", models) if len(models) > 1 else None
            if st.button("Load dataset", type="primary"):
                sources.use_server_dataset(shown, model)
    else:
        st.markdown(f"Upload **one .zip** of a dataset folder (layout: `qrels/*.tsv`, "
                    f"`emb/<model>/corpus.npy`, `queries.npy`, `corpus_ids.txt`, `query_ids.txt`, "
                    f"optional `corpus.jsonl`, `queries.jsonl`) **or loose files**: {LOOSE_HELP}. "
                    f"Each file may be up to **{sources.upload_limit_mb()} MB**; "
                    f"{sources.upload_limits().describe()}. A new upload replaces the previous files. "
                    "Uploads stay private to this browser session.")
        files = replacing_uploader("Dataset files", "dataset_upload",
                                   type=["zip", "npy", "txt", "tsv", "jsonl", "gz"])
        if files:
            sources.use_dataset_upload(files)
            st.rerun()
        up = ss.upload
        if up:
            c1, c2 = st.columns([4, 1])
            c1.caption("Uploaded: " + ", ".join(f"`{n}`" for n in up["files"]) + ".")
            if c2.button("Clear the upload"):
                sources.clear_upload()
                st.rerun()
            model_error = None
            if len(up["models"]) > 1:
                model_error = sources.use_upload_model(st.selectbox(
                    "Embedding set in the zip", up["models"], index=up["models"].index(up["model"])))
            elif up["loose"]:
                model_error = sources.use_upload_model(st.text_input(
                    "Model name", value=up["model"], key=f"model_name_{up['content'][:12]}",
                    help="The name of the emb/<model>/ folder these files live in on your machine; the "
                         "Export page's command reads that folder."))
            if model_error:
                st.error(model_error, icon=":material/error:")

    if ss.load_error:
        st.error(ss.load_error, icon=":material/error:")
        st.caption("The previous dataset stays in use until a valid one loads.")

    ds, src = sources.current_dataset()
    if ds is None:
        st.stop()

    st.subheader("Validation report")
    st.success(f"Loaded **{src['label']}**: {ds.n_records:,} records of dimension {ds.dim}, "
               f"{len(ds.labelled_ids):,} labelled queries, model `{ds.model}`.", icon=":material/check_circle:")
    for note in sources.shown_notes(ds, src):
        st.info(note, icon=":material/info:")

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
        cfg["seed"] = int(st.number_input("Seed (permutation and k-means)", 0, runs.SEED_MAX, int(cfg["seed"])))
        if cfg["mode"] == "paper":
            cfg["val_frac"] = st.slider("Validation share", *runs.VAL_FRAC, float(cfg["val_frac"]), 0.05)
            cfg["test_frac"] = st.slider("Test share", *runs.TEST_FRAC, float(cfg["test_frac"]), 0.05)
        elif cfg["mode"] == "file":
            st.caption('A JSON object {"train": [...], "val": [...], "test": [...]} of query ids '
                       '("ood" optional).')
            up = st.file_uploader("Split file", type=["json"], key="split_upload")
            if up is not None:
                try:
                    cfg["split_obj"], cfg["split_name"] = read_split_file(up.name, up.getvalue()), up.name
                except DataError as exc:
                    show_error(exc)
            if cfg.get("split_obj") is None:
                st.warning("No split file yet; using the paper protocol until one is uploaded.")
    with c2:
        OODS = {"none": "No OOD check", "kmeans": "k-means split (2 clusters of training queries)"}
        if ood_sets.bundled_ood_dir(src) is not None:
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
            files = replacing_uploader("OOD query set", "ood_upload_w",
                                       type=["zip", "npy", "txt", "tsv", "jsonl"])
            if files:
                ss.split_cfg = dict(cfg)
                ss.ood_error = ood_sets.use_ood_upload(files, ds)
                st.rerun()
            if ss.get("ood_error"):
                st.error(ss.ood_error, icon=":material/error:")
            ood_up = ood_sets.current_upload()
            if ood_up:
                st.success(f"OOD set: {len(ood_up['queries'].queries)} labelled queries from "
                           + ", ".join(f"`{n}`" for n in ood_up["files"]) + ".")
                if st.button("Clear the OOD set"):
                    ood_sets.clear_ood_upload()
                    st.rerun()
    effective = dict(cfg)
    if effective["mode"] == "file" and effective.get("split_obj") is None:
        effective["mode"] = "paper"
    ss.split_cfg = effective

    split = runs.current_split(ds)
    st.subheader("Dataset facts")
    texts = None
    if not ds.corpus_text and sources.text_lookup(ds, src) is not None:
        texts = "rebuilt from the running Python's docstrings"
    facts = dataset_facts(ds, split, texts)
    st.dataframe(facts, hide_index=True, width="stretch", height=35 * (len(facts) + 1) + 3)
    if split is not None:
        st.caption("Split: " + split.description + ".")
        st.page_link("pages/finetune.py", label="Next: fine-tune", icon=":material/arrow_forward:")
