"""Serving indexes (nudge_core.serving): exact at exact settings (checked against the engine's exact
search), encodings equal to sentence-transformers' ``quantize_embeddings``, search equal to its
``semantic_search_faiss``, strict spec parsing with errors before anything is built."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from optional import needs

from nudge_core.errors import SpecError
from nudge_core.index import ExactIndex, Index
from nudge_core.retrieval import normalize_rows
from nudge_core.serving import (IndexSpec, ScalarQuantizedIndex, calibration_ranges,
                                dequantize_scalar, faiss_threads, pack_signs, parse_specs,
                                quantize_scalar, truncate_rows)

N, D, K = 400, 32, 10


def _data(seed: int = 0, n: int = N, d: int = D):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((6, d))
    records = normalize_rows((centres[rng.integers(0, 6, n)]
                              + 0.7 * rng.standard_normal((n, d))).astype(np.float32))
    queries = (records[rng.integers(0, n, 25)] + 0.3 * rng.standard_normal((25, d))).astype(np.float32)
    return records, queries


def assert_same_topk(index, reference: np.ndarray, queries: np.ndarray, k: int = K,
                     exclude=None) -> None:
    """``index`` ranks like exact inner-product search over ``reference`` (n, d): the scores
    agree position by position, and every returned row truly has its position's score (so only
    the order among exactly tied records may differ)."""
    want_s, want_r = ExactIndex(reference).search(queries, k, exclude=exclude)
    got_s, got_r = index.search(queries, k, exclude=exclude)
    assert got_r.shape == want_r.shape == (len(queries), k)
    np.testing.assert_allclose(got_s, want_s, rtol=1e-4, atol=1e-4)
    true = np.einsum("qd,qkd->qk", queries, reference[np.where(got_r >= 0, got_r, 0)])
    np.testing.assert_allclose(np.where(got_r >= 0, true, -np.inf), want_s, rtol=1e-4, atol=1e-4)
    if exclude is not None:
        assert not np.isin(got_r, exclude).any()


#: spec at exact settings for N records of dimension D -> what it is exact search over:
#: "records" (the float input) or "decoded" (its own stored vectors, ``take``).
EXACT_SETTINGS = {
    "exact": "records",
    f"truncate:dim={D}": "records",
    f"hnsw:M=8,ef={N}": "records",
    "ivf:nlist=8,nprobe=8": "records",
    f"int8:rescore={N}": "decoded",
    f"uint8:rescore={N}": "decoded",
    f"binary:rescore={N}": "decoded",
    "ivfpq:nlist=4,m=8,bits=6,nprobe=4": "decoded",
}


@pytest.mark.parametrize("text", list(EXACT_SETTINGS))
def test_each_index_is_exact_search_at_exact_settings(text):
    records, queries = _data()
    index = IndexSpec.parse(text).build(records)
    assert isinstance(index, Index) and (index.n, index.dim) == (N, D)
    assert index.build_seconds >= 0 and index.bytes_per_record > 0
    decoded = index.take(np.arange(N))
    if EXACT_SETTINGS[text] == "records":
        np.testing.assert_allclose(decoded, records, atol=1e-6)
        reference = records
    else:
        reference = decoded
    exclude = np.array([5, 9, 9, 200])
    for ex in (None, exclude):
        assert_same_topk(index, reference, queries, exclude=ex)
    _, _, kept = index.search(queries, 3, exclude=exclude, excluded_scores=True)
    np.testing.assert_allclose(kept, queries @ reference[[5, 9, 200]].T, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("text", [f"hnsw:M=8,ef={N}", "ivf:nlist=8,nprobe=8", f"int8:rescore={N}",
                                  f"binary:rescore={N}", f"truncate:dim={D}", "exact"])
def test_replace_then_search_is_exact_over_the_new_records(text):
    records, queries = _data()
    index = IndexSpec.parse(text).build(records.copy())
    rows = np.array([3, 50, 399])
    new = normalize_rows(queries[:3].copy())  # move three records right onto queries
    index.replace(rows, new)
    updated = records.copy()
    updated[rows] = new
    reference = updated if text in ("exact", f"truncate:dim={D}") or text.startswith(("hnsw", "ivf")) \
        else index.take(np.arange(N))
    assert_same_topk(index, reference, queries)
    assert set(index.search(queries[:3], 1)[1].ravel()) == set(rows)


def test_truncation_keeps_each_records_norm_and_cuts_queries():
    records, queries = _data()
    scaled = records * np.linspace(0.5, 3, N, dtype=np.float32)[:, None]
    cut = truncate_rows(scaled, 8)
    np.testing.assert_allclose(np.linalg.norm(cut, axis=1), np.linalg.norm(scaled, axis=1), rtol=1e-5)
    index = IndexSpec.parse("truncate:dim=8").build(scaled)
    assert index.bytes_per_record == 4 * 8
    padded = np.zeros_like(scaled)
    padded[:, :8] = cut
    assert_same_topk(index, padded, queries)


def test_approximate_settings_still_return_k_distinct_rows():
    records, queries = _data()
    for text in ("hnsw:M=4,ef=8", "ivf:nlist=16,nprobe=1", "ivfpq:nlist=8,m=4,bits=4,nprobe=2",
                 "binary", "int8", "uint8", "truncate:dim=4"):
        scores, rows = IndexSpec.parse(text).build(records).search(queries, K)
        assert (rows >= 0).all() and all(len(set(r)) == K for r in rows), text
        assert np.all(np.diff(scores, axis=1) <= 1e-6), text


def test_short_results_are_padded_with_minus_one():
    records, queries = _data(n=20)
    for text in ("exact", "hnsw:M=4,ef=64", "ivf:nlist=2,nprobe=2", "binary:rescore=5", "int8"):
        scores, rows = IndexSpec.parse(text).build(records).search(queries[:2], 25)
        assert (rows[:, 20:] == -1).all() and np.isneginf(scores[:, 20:]).all(), text
        assert (rows[:, :20] >= 0).all(), text


# ------------------------------------------------------------------ sentence-transformers agreement

def _st_quantization():
    needs("sentence_transformers")
    try:
        from sentence_transformers.util import quantization
    except ImportError:  # before sentence-transformers 6
        from sentence_transformers import quantization
    return quantization


def test_encodings_equal_sentence_transformers_quantize_embeddings():
    st = _st_quantization()
    records, queries = _data()
    records = records * np.float32(1.7)  # not unit norm, like NUDGE-M's records
    ranges = calibration_ranges(records)
    np.testing.assert_array_equal(ranges, np.vstack([records.min(0), records.max(0)]))
    for precision in ("int8", "uint8"):
        want = st.quantize_embeddings(records, precision, calibration_embeddings=records)
        got = quantize_scalar(records, ranges, precision)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        want_q = st.quantize_embeddings(queries, precision, ranges=ranges)
        assert np.array_equal(quantize_scalar(queries, ranges, precision), want_q)
        index = ScalarQuantizedIndex(records, precision)
        assert np.array_equal(index.codes, want)
        np.testing.assert_allclose(dequantize_scalar(got, ranges),
                                   ranges[0] + (got.astype(np.float64) + (128 if precision == "int8"
                                                                          else 0))
                                   * (ranges[1] - ranges[0]) / 255, rtol=1e-5, atol=1e-6)
    assert np.array_equal(pack_signs(records), st.quantize_embeddings(records, "ubinary"))
    assert np.array_equal((pack_signs(records).astype(np.int16) - 128).astype(np.int8),
                          st.quantize_embeddings(records, "binary"))


@pytest.mark.parametrize("precision,spec", [("uint8", "uint8"), ("ubinary", "binary")])
@pytest.mark.parametrize("rescore", [False, True])
def test_search_equals_sentence_transformers_semantic_search_faiss(precision, spec, rescore):
    st = _st_quantization()
    records, queries = _data()
    ranges = calibration_ranges(records)
    corpus = st.quantize_embeddings(records, precision, ranges=ranges)
    k = 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hits, _ = st.semantic_search_faiss(queries, corpus_embeddings=corpus, corpus_precision=precision,
                                           top_k=k, ranges=ranges, rescore=rescore,
                                           rescore_multiplier=N // k)
    want = np.array([[h["score"] for h in row] for row in hits], dtype=np.float64)
    text = f"{spec}:rescore={N}" if rescore else spec
    scores, _ = IndexSpec.parse(text).build(records).search(queries, k)
    if not rescore and precision == "ubinary":
        want = D - 2 * want  # sentence-transformers reports the Hamming distance, we d - 2·hamming
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-3)


# ------------------------------------------------------------------ specs

@pytest.mark.parametrize("text,match", [
    ("flat", "unknown index 'flat'"),
    ("HNSW", "unknown index 'HNSW' .names are lower case"),
    ("hnsw:", "nothing after ':'"),
    ("hnsw:m=32", "unknown setting 'm' for hnsw .it takes M, ef, efc"),
    ("hnsw:M=1", "M must be in \\[2, 512\\]"),
    ("hnsw:M=32,M=16", "M is given twice"),
    ("hnsw:M=3.5", "M must be a plain decimal integer, got '3.5'"),
    ("hnsw:M=1e2", "M must be a plain decimal integer"),
    ("hnsw:M=+8", "M must be a plain decimal integer"),
    ("hnsw:M=", "M must be a plain decimal integer, got ''"),
    ("hnsw:M", "M must be a plain decimal integer"),
    ("ivf:nlist=0", "nlist must be in \\[1,"),
    ("truncate", "truncate needs dim="),
    ("exact:dim=3", "unknown setting 'dim' for exact .it takes no settings"),
    ("ivfpq:bits=17", "bits must be in \\[1, 16\\]"),
    ("binary:rescore=-1", "rescore must be a plain decimal integer"),
    ("int8:rescore=1_0", "rescore must be a plain decimal integer"),
])
def test_spec_parse_errors_name_the_spec_and_parameter(text, match):
    with pytest.raises(SpecError, match=f"index spec '{re.escape(text)}'.*{match}"):
        IndexSpec.parse(text)


@pytest.mark.parametrize("text,n,d,match", [
    ("truncate:dim=64", 100, 32, "dim=64 exceeds the records' 32 dimensions"),
    ("ivfpq:m=5", 1000, 32, "m=5 does not divide the records' 32 dimensions .divisors: 1, 2, 4, 8"),
    ("ivfpq:nlist=4", 1000, 30, "m .PQ sub-vectors. must divide d=30"),
    ("ivf:nlist=200", 100, 32, "nlist=200 exceeds the 100 records"),
    ("ivfpq:nlist=8,m=8", 100, 32, "bits=8 needs 2\\^8 = 256 records"),
    ("ivf:nlist=4,nprobe=5", 100, 32, "nprobe=5 exceeds nlist=4"),
])
def test_impossible_parameters_are_refused_before_anything_is_built(text, n, d, match, monkeypatch):
    import faiss

    spec = IndexSpec.parse(text)
    with pytest.raises(SpecError, match=f"index spec '{re.escape(text)}'.*{match}"):
        spec.check(n, d)

    def no_faiss(*args, **kwargs):
        raise AssertionError("faiss was called")
    for name in ("IndexIVFFlat", "IndexIVFPQ", "IndexFlatIP"):
        monkeypatch.setattr(faiss, name, no_faiss)
    with pytest.raises(SpecError, match=match):
        spec.build(np.zeros((n, d), dtype=np.float32))


def test_spec_text_is_kept_as_given_and_defaults_fill_in():
    spec = IndexSpec.parse(" hnsw:ef=128 ")
    assert spec.text == " hnsw:ef=128 " and str(spec) == " hnsw:ef=128 "
    assert spec.canonical == "hnsw:ef=128" and spec.given == {"ef": 128}
    assert spec.settings(1000, 64) == {"M": 32, "ef": 128, "efc": 40}
    assert IndexSpec.parse("ivfpq").settings(1000, 384)["m"] == 48
    with pytest.raises(SpecError, match="index spec 'int8' is given twice"):
        parse_specs(["int8", "binary", "int8"])


def test_faiss_threads_are_set_inside_and_restored_after():
    import faiss

    before = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(2)
        with faiss_threads(1):
            assert faiss.omp_get_max_threads() == 1
        assert faiss.omp_get_max_threads() == 2
        with pytest.raises(RuntimeError, match="boom"), faiss_threads(1):
            raise RuntimeError("boom")
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)
