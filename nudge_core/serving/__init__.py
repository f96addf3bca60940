"""Serving: NUDGE's records under compression and approximate indexes (issue 15).

Every index here keeps the engine's :class:`~nudge_core.index.Index` protocol (``n``, ``dim``,
``search``, ``take``, ``replace``) and adds ``build_seconds`` and ``bytes_per_record``:

* :mod:`.base`: the shared base class, sentence-transformers-style rescoring, ``exact``;
* :mod:`.compressed`: ``truncate``, ``int8`` / ``uint8``, ``binary`` (sentence-transformers'
  ``quantize_embeddings`` encodings);
* :mod:`.ann`: faiss ``hnsw``, ``ivf``, ``ivfpq`` (inner product), and :func:`faiss_threads`;
* :mod:`.specs`: ``NAME[:key=value,...]`` text → :class:`IndexSpec` → an index;
* :mod:`.evaluate`: :func:`evaluate_serving`, every method of a run through each index;
* :mod:`.tuning`: :func:`gamma_under_index`, NUDGE's γ chosen through the served index
  (``evaluate_serving(..., tune=True)``, the run spec's ``tune_for_index``).

faiss is imported here (not by ``nudge_core`` itself): the exact search stays numpy.
"""

from .ann import DEFAULT_THREADS, HNSWIndex, IVFIndex, faiss_threads
from .base import FlatIndex, ServingIndex
from .compressed import (BinaryIndex, ScalarQuantizedIndex, TruncatedIndex, calibration_ranges,
                         dequantize_scalar, pack_signs, quantize_scalar, truncate_rows,
                         unpack_signs)
from .evaluate import HEADLINE, evaluate_serving, needs_both_ways, time_queries
from .specs import KINDS, PRESETS, IndexSpec, parse_specs
from .tuning import choose_gamma, gamma_under_index, validation_curve

__all__ = ["BinaryIndex", "DEFAULT_THREADS", "FlatIndex", "HEADLINE", "HNSWIndex", "IVFIndex",
           "IndexSpec", "KINDS", "PRESETS", "ScalarQuantizedIndex", "ServingIndex",
           "TruncatedIndex", "calibration_ranges", "choose_gamma", "dequantize_scalar", "evaluate_serving",
           "faiss_threads", "gamma_under_index", "needs_both_ways", "pack_signs", "parse_specs",
           "quantize_scalar", "time_queries", "truncate_rows", "unpack_signs", "validation_curve"]
