"""Index specs: ``NAME[:key=value,...]`` text → a checked :class:`IndexSpec` → a built index.

Names and keys (values are plain decimal integers; defaults in brackets):

* ``exact``: float32, exact (:class:`~.base.FlatIndex`); no keys.
* ``truncate``: the first ``dim`` components (:class:`~.compressed.TruncatedIndex`); dim (required).
* ``int8`` / ``uint8``: scalar codes (:class:`~.compressed.ScalarQuantizedIndex`); rescore [0 = off].
* ``binary``: sign bits, Hamming (:class:`~.compressed.BinaryIndex`); rescore [0].
* ``hnsw``: faiss IndexHNSWFlat (:class:`~.ann.HNSWIndex`); M [32], ef [64], efc [40].
* ``ivf``: faiss IndexIVFFlat (:class:`~.ann.IVFIndex`); nlist [64], nprobe [min(8, nlist)].
* ``ivfpq``: faiss IndexIVFPQ (:class:`~.ann.IVFIndex`); nlist [64], m [d/8], bits [8],
  nprobe [min(8, nlist)].

:meth:`IndexSpec.parse` refuses malformed text; :meth:`IndexSpec.check` refuses what cannot be
built on ``n`` records of dimension ``d`` (``dim`` > d, ``m`` not dividing d, ``nlist`` > n,
``nprobe`` > ``nlist``, 2^bits > n). Both raise :class:`~nudge_core.errors.SpecError` (a
ValueError) naming the spec as the user wrote it and the parameter, before anything is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import SpecError
from .ann import DEFAULT_THREADS, HNSWIndex, IVFIndex
from .base import FlatIndex, ServingIndex
from .compressed import BinaryIndex, ScalarQuantizedIndex, TruncatedIndex


@dataclass(frozen=True)
class Key:
    """One integer setting: ``default`` (None: required, or derived from the data), allowed
    [minimum, maximum]."""

    name: str
    default: int | None
    minimum: int
    maximum: int
    help: str


_RESCORE = Key("rescore", 0, 0, 10**7, "re-rank the top max(rescore, k) with the float query "
               "(0 = off)")
_NLIST = Key("nlist", 64, 1, 10**7, "inverted lists (k-means centroids); <= records")
_NPROBE = Key("nprobe", 8, 1, 10**7, "lists visited per query; <= nlist (= nlist: exhaustive); "
               "the default 8 is lowered to nlist when nlist < 8")

#: Every index name and its keys, in the order the table above lists them.
KINDS: dict[str, tuple[Key, ...]] = {
    "exact": (),
    "truncate": (Key("dim", None, 1, 10**7, "dimensions kept (<= d)"),),
    "int8": (_RESCORE,),
    "uint8": (_RESCORE,),
    "binary": (_RESCORE,),
    "hnsw": (Key("M", 32, 2, 512, "graph links per node"),
             Key("ef", 64, 1, 10**7, "efSearch: candidate list size at query time"),
             Key("efc", 40, 1, 10**7, "efConstruction: candidate list size while building")),
    "ivf": (_NLIST, _NPROBE),
    "ivfpq": (_NLIST, Key("m", None, 1, 10**5, "PQ sub-vectors; divides d (default d/8)"),
              Key("bits", 8, 1, 16, "bits per sub-vector code"), _NPROBE),
}

#: Named configurations for menus (label → spec text).
PRESETS = {
    "exact float32": "exact",
    "Matryoshka 128": "truncate:dim=128",
    "int8": "int8",
    "binary": "binary",
    "binary + rescore": "binary:rescore=40",
    "HNSW M=32": "hnsw:M=32,ef=64",
    "IVF nlist=64": "ivf:nlist=64,nprobe=8",
    "IVF-PQ 48×8": "ivfpq:nlist=64,m=48,bits=8,nprobe=8",
}

_INTEGER = re.compile(r"[0-9]+")
_NAME = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class IndexSpec:
    """A parsed spec. ``text``: exactly as the user gave it (the key results are reported under);
    ``name``: one of :data:`KINDS`; ``given``: the keys the user set."""

    text: str
    name: str
    given: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: "str | IndexSpec") -> "IndexSpec":
        """Strict: known name, known keys once each, ``key=value`` with a decimal integer value
        in the key's range."""
        if isinstance(text, IndexSpec):
            return text
        if not isinstance(text, str):
            raise SpecError(f"index spec: expected text like 'hnsw:M=32', got {text!r}")
        where = f"index spec {text[:80]!r}"
        name, sep, rest = text.strip().partition(":")
        if name not in KINDS:
            hint = " (names are lower case)" if name.lower() in KINDS else ""
            raise SpecError(f"{where}: unknown index {name[:40]!r}{hint}; choose from "
                            f"{', '.join(KINDS)}")
        keys = {k.name: k for k in KINDS[name]}
        given: dict[str, int] = {}
        if sep and not rest:
            raise SpecError(f"{where}: nothing after ':'; write {name} or {name}:key=value")
        for item in rest.split(",") if rest else ():
            key, eq, value = item.partition("=")
            if key not in keys:
                allowed = ", ".join(keys) or "no settings"
                raise SpecError(f"{where}: unknown setting {key[:40]!r} for {name} (it takes "
                                f"{allowed})")
            if not eq or not _INTEGER.fullmatch(value):
                raise SpecError(f"{where}: {key} must be a plain decimal integer, got "
                                f"{value[:40]!r}")
            if key in given:
                raise SpecError(f"{where}: {key} is given twice")
            spec = keys[key]
            number = int(value)
            if not spec.minimum <= number <= spec.maximum:
                raise SpecError(f"{where}: {key} must be in [{spec.minimum}, {spec.maximum}] "
                                f"({spec.help}), got {number}")
            given[key] = number
        missing = [k.name for k in KINDS[name] if k.default is None and k.name not in given
                   and not (name == "ivfpq" and k.name == "m")]
        if missing:
            raise SpecError(f"{where}: {name} needs {missing[0]}=... "
                            f"({keys[missing[0]].help})")
        return cls(text, name, given)

    def settings(self, n: int, dim: int) -> dict[str, int]:
        """Every key's value for ``n`` records of dimension ``dim`` (defaults filled in), or
        SpecError naming this spec and the parameter that cannot be built on such data."""
        where = f"index spec {self.text[:80]!r}"
        out = {k.name: self.given.get(k.name, k.default) for k in KINDS[self.name]}
        if n < 1 or dim < 1:
            raise SpecError(f"{where}: there are no records to index ({n} x {dim})")
        if self.name == "truncate" and out["dim"] > dim:
            raise SpecError(f"{where}: dim={out['dim']} exceeds the records' {dim} dimensions")
        if self.name in ("ivf", "ivfpq"):
            if "nprobe" not in self.given:
                out["nprobe"] = min(out["nprobe"], out["nlist"])
            if out["nlist"] > n:
                raise SpecError(f"{where}: nlist={out['nlist']} exceeds the {n} records (k-means "
                                "needs at least one record per list)")
            if out["nprobe"] > out["nlist"]:
                raise SpecError(f"{where}: nprobe={out['nprobe']} exceeds nlist={out['nlist']}")
        if self.name == "ivfpq":
            if out["m"] is None:
                if dim % 8:
                    raise SpecError(f"{where}: m (PQ sub-vectors) must divide d={dim}; give m=...")
                out["m"] = dim // 8
            if dim % out["m"]:
                raise SpecError(f"{where}: m={out['m']} does not divide the records' {dim} "
                                f"dimensions (divisors: {_divisors(dim)})")
            if 2 ** out["bits"] > n:
                raise SpecError(f"{where}: bits={out['bits']} needs 2^{out['bits']} = "
                                f"{2 ** out['bits']} records to train each codebook; there are {n}")
        return out

    def check(self, n: int, dim: int) -> None:
        """:meth:`settings`, for its errors."""
        self.settings(n, dim)

    @property
    def canonical(self) -> str:
        """``name:key=value,...`` with every given key, in table order (a cache key)."""
        items = [f"{k.name}={self.given[k.name]}" for k in KINDS[self.name] if k.name in self.given]
        return self.name + (":" + ",".join(items) if items else "")

    def build(self, vectors: np.ndarray, threads: int | None = DEFAULT_THREADS) -> ServingIndex:
        """The index over ``vectors`` (n, d) float32 (checked first; may be a memory map)."""
        s = self.settings(*vectors.shape)
        if self.name == "exact":
            return FlatIndex(vectors)
        if self.name == "truncate":
            return TruncatedIndex(vectors, s["dim"])
        if self.name in ("int8", "uint8"):
            return ScalarQuantizedIndex(vectors, self.name, s["rescore"])
        if self.name == "binary":
            return BinaryIndex(vectors, s["rescore"], threads=threads)
        if self.name == "hnsw":
            return HNSWIndex(vectors, s["M"], s["ef"], s["efc"], threads=threads)
        return IVFIndex(vectors, s["nlist"], s["nprobe"], s.get("m"), s.get("bits", 8),
                        threads=threads)

    def __str__(self) -> str:
        return self.text


def parse_specs(texts) -> list[IndexSpec]:
    """Each of ``texts`` parsed; SpecError on the first bad one or on a spec given twice."""
    specs = [IndexSpec.parse(t) for t in texts]
    seen: set[str] = set()
    for s in specs:
        if s.text in seen:
            raise SpecError(f"index spec {s.text!r} is given twice")
        seen.add(s.text)
    return specs


def _divisors(d: int) -> str:
    divs = [m for m in range(1, d + 1) if d % m == 0]
    return ", ".join(map(str, divs[:16])) + (", ..." if len(divs) > 16 else "")
