"""Compressed record stores: Matryoshka truncation, scalar (int8 / uint8) and binary quantization.

The encodings are sentence-transformers' ``quantize_embeddings`` (``sentence_transformers.util.
quantization``; ``tests/test_serving_indexes.py`` checks them against it on the same inputs):

* int8 / uint8: per-dimension ranges [min; max] calibrated on the records, ``step = (max - min) /
  255`` (1 where max = min), ``code = clip(floor((x - min) / step), 0, 255)``, minus 128 for int8.
  Searched as its ``semantic_search_*`` helpers search them: queries quantized with the *records'*
  ranges, inner product of the integer codes (int8 codes are centred, uint8 codes are not: each
  record's score then carries a bias proportional to the sum of its codes, which can wreck the
  ranking; ``benchmarks/bench_serving.py`` shows it). ``rescore=R``: the top max(R, k) are re-ranked by the float query against
  the dequantized records (``code · step + min``), as those helpers rescore.
* binary: sign bits ``x > 0`` packed 8 per byte (precision "ubinary"; "binary" is the same bytes
  minus 128), Hamming distance by faiss ``IndexBinaryFlat``; the score is the inner product of the
  ±1 sign vectors, ``d - 2·hamming``. ``rescore=R``: the top max(R, k) re-ranked by the float query
  against the records' {0, 1} bits (sentence-transformers' binary rescoring: the float records
  are not kept). Record norms are lost entirely (a record's bits do not depend on its length).
* truncate: the first ``dim`` components, re-normalised to the full row's norm (unit records
  stay unit: Matryoshka truncation; NUDGE-M's longer records keep their length); queries are cut to
  the same components (their scale does not change a query's ranking).
"""

from __future__ import annotations

import time

import faiss
import numpy as np

from ..retrieval import BLOCK_ROWS, normalize_rows, row_norms
from ..retrieval import search as exact_search
from .ann import DEFAULT_THREADS, excluding, faiss_threads
from .base import ServingIndex, rescore

PRECISIONS = ("int8", "uint8")


# ------------------------------------------------------------------ encodings (numpy in, numpy out)

def calibration_ranges(x: np.ndarray, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """(2, d) float32 per-dimension [min; max] of ``x`` (n, d), read block by block (memory maps)."""
    lo = np.full(x.shape[1], np.inf, dtype=np.float32)
    hi = np.full(x.shape[1], -np.inf, dtype=np.float32)
    for a in range(0, x.shape[0], block_rows):
        block = np.asarray(x[a:a + block_rows], dtype=np.float32)
        np.minimum(lo, block.min(axis=0), out=lo)
        np.maximum(hi, block.max(axis=0), out=hi)
    return np.vstack([lo, hi])


def _steps(ranges: np.ndarray) -> np.ndarray:
    steps = (ranges[1] - ranges[0]) / np.float32(255)
    return np.where(steps == 0, np.float32(1), steps).astype(np.float32)


def quantize_scalar(x: np.ndarray, ranges: np.ndarray, precision: str = "int8",
                    block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """(n, d) int8 / uint8 codes of ``x`` (n, d) float32 with ``ranges`` (2, d), in float32
    arithmetic like ``quantize_embeddings(x, precision, ranges=ranges)``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    ranges = np.asarray(ranges, dtype=np.float32)
    starts, steps = ranges[0], _steps(ranges)
    out = np.empty(x.shape, dtype=np.int8 if precision == "int8" else np.uint8)
    for a in range(0, x.shape[0], block_rows):
        block = np.asarray(x[a:a + block_rows], dtype=np.float32)
        codes = np.clip(np.floor((block - starts) / steps), 0, 255)
        out[a:a + block_rows] = codes - 128 if precision == "int8" else codes
    return out


def dequantize_scalar(codes: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """(n, d) float32 ``code · step + min`` (sentence-transformers' ``_dequantize_embeddings``;
    int8 codes get their 128 back first)."""
    ranges = np.asarray(ranges, dtype=np.float32)
    values = codes.astype(np.float32)
    if codes.dtype == np.int8:
        values += 128
    return values * _steps(ranges) + ranges[0]


def pack_signs(x: np.ndarray) -> np.ndarray:
    """(n, ceil(d / 8)) uint8: the bits ``x > 0`` packed (``quantize_embeddings(x, "ubinary")``)."""
    return np.packbits(np.asarray(x) > 0, axis=-1)


def unpack_signs(codes: np.ndarray, dim: int) -> np.ndarray:
    """(n, dim) float32 {0, 1} bits of :func:`pack_signs` codes (what binary rescoring uses)."""
    return np.unpackbits(codes, axis=-1, count=dim).astype(np.float32)


def truncate_rows(x: np.ndarray, dim: int, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """(n, dim) float32: the first ``dim`` components of each row, rescaled to the row's full norm
    (zero rows and rows whose first ``dim`` components are all zero stay zero)."""
    out = np.empty((x.shape[0], dim), dtype=np.float32)
    for a in range(0, x.shape[0], block_rows):
        block = np.asarray(x[a:a + block_rows], dtype=np.float32)
        normalize_rows(block[:, :dim], out=out[a:a + block_rows])
        out[a:a + block_rows] *= row_norms(block)[:, None]
    return out


# ------------------------------------------------------------------ indexes

class TruncatedIndex(ServingIndex):
    """``truncate:dim=D``: :func:`truncate_rows` stored as float32 (4·D bytes per record), exact
    inner-product search of queries cut to their first D components. ``take`` returns the stored
    rows zero-padded to d (so a full query's inner product with them is the index's score);
    ``replace`` truncates the new vectors in place."""

    def __init__(self, vectors: np.ndarray, dim: int) -> None:
        t0 = time.perf_counter()
        self.n, self.dim = (int(s) for s in vectors.shape)
        if not 1 <= dim <= self.dim:
            raise ValueError(f"truncate: dim must be in [1, {self.dim}], got {dim}")
        self.stored_dim = int(dim)
        self.vectors = truncate_rows(vectors, self.stored_dim)
        self.nbytes = self.vectors.nbytes
        self.build_seconds = time.perf_counter() - t0

    def _search(self, queries, k, excluded):
        q = np.ascontiguousarray(queries[:, :self.stored_dim])
        return exact_search(q, self.vectors, k, exclude=excluded)

    def take(self, rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        out[:, :self.stored_dim] = self.vectors[np.asarray(rows, dtype=np.int64)]
        return out

    def replace(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        self.vectors[np.asarray(rows, dtype=np.int64)] = truncate_rows(vectors, self.stored_dim)


class ScalarQuantizedIndex(ServingIndex):
    """``int8`` / ``uint8`` (``:rescore=R``): :func:`quantize_scalar` codes (d bytes per record, plus
    the (2, d) ranges), searched as the module docstring says. Scores: the integer inner product of
    query and record codes (exact in float32 up to 2^24, i.e. d <= 1024 for int8; uint8 sums
    above that round to float32), or with ``rescore`` the float query · dequantized record.
    ``take``: dequantized records. ``replace``: encodes with the *calibrated* ranges (values
    beyond them clip to 0 / 255; the ranges are not re-calibrated)."""

    def __init__(self, vectors: np.ndarray, precision: str = "int8", rescore: int = 0) -> None:
        t0 = time.perf_counter()
        self.n, self.dim = (int(s) for s in vectors.shape)
        self.precision, self.rescore = precision, int(rescore)
        self.ranges = calibration_ranges(vectors)
        self.codes = quantize_scalar(vectors, self.ranges, precision)
        self.nbytes = self.codes.nbytes + self.ranges.nbytes
        self.build_seconds = time.perf_counter() - t0

    def _query_codes(self, queries: np.ndarray) -> np.ndarray:
        return quantize_scalar(queries, self.ranges, self.precision).astype(np.float32)

    def _search(self, queries, k, excluded):
        width = max(k, self.rescore) if self.rescore else k
        scores, rows = exact_search(self._query_codes(queries), self.codes, width, exclude=excluded)
        if not self.rescore:
            return scores, rows
        return rescore(queries, rows, self.take, k)

    def score_rows(self, queries, rows):
        q = self._queries(queries)
        rows = np.asarray(rows, dtype=np.int64)
        if self.rescore:
            return q @ self.take(rows).T
        return self._query_codes(q) @ self.codes[rows].astype(np.float32).T

    def take(self, rows: np.ndarray) -> np.ndarray:
        return dequantize_scalar(self.codes[np.asarray(rows, dtype=np.int64)], self.ranges)

    def replace(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        self.codes[np.asarray(rows, dtype=np.int64)] = quantize_scalar(
            np.atleast_2d(vectors), self.ranges, self.precision)


class BinaryIndex(ServingIndex):
    """``binary`` (``:rescore=R``): :func:`pack_signs` codes in a faiss ``IndexBinaryFlat``
    (ceil(d/8) bytes per record), exact Hamming search; see the module docstring for scores and
    rescoring. ``take``: the {0, 1} bits as float32. ``replace``: re-packs the rows and re-adds
    every code to the faiss index (O(n); ``IndexBinaryFlat`` has no in-place update)."""

    def __init__(self, vectors: np.ndarray, rescore: int = 0, threads: int = DEFAULT_THREADS) -> None:
        t0 = time.perf_counter()
        self.n, self.dim = (int(s) for s in vectors.shape)
        self.rescore, self.threads = int(rescore), threads
        self.codes = np.concatenate([pack_signs(np.asarray(vectors[a:a + BLOCK_ROWS], np.float32))
                                     for a in range(0, self.n, BLOCK_ROWS)]) if self.n else \
            np.zeros((0, (self.dim + 7) // 8), dtype=np.uint8)
        self._add()
        self.nbytes = len(faiss.serialize_index_binary(self.index))
        self.build_seconds = time.perf_counter() - t0

    def _add(self) -> None:
        self.index = faiss.IndexBinaryFlat(8 * self.codes.shape[1])
        with faiss_threads(self.threads):
            self.index.add(self.codes)

    def _search(self, queries, k, excluded):
        width = max(k, self.rescore) if self.rescore else k
        with faiss_threads(self.threads), excluding(excluded) as params:
            dist, rows = self.index.search(pack_signs(queries), width, params=params)
        if self.rescore:
            return rescore(queries, rows, self.take, k)
        return self.dim - 2 * dist.astype(np.float32), rows

    def score_rows(self, queries, rows):
        q = self._queries(queries)
        bits = self.take(rows)
        if self.rescore:
            return q @ bits.T
        return (2 * (q > 0) - 1).astype(np.float32) @ (2 * bits - 1).T

    def take(self, rows: np.ndarray) -> np.ndarray:
        return unpack_signs(self.codes[np.asarray(rows, dtype=np.int64)], self.dim)

    def replace(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        self.codes[np.asarray(rows, dtype=np.int64)] = pack_signs(np.atleast_2d(vectors))
        self._add()
