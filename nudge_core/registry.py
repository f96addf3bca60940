"""The method registry: every method is named once, here, with what the rest of the code needs.

The CLI (``--methods``, its γ flags and per-method flags), the run spec, the experiment runner,
the results JSON, the sensitivity sweep and the app's method lists and colours all read this
table; none of them names a method. Adding a method = one estimator module (a
:class:`~nudge_core.estimator.FineTuner`) + one :func:`register` call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .baselines import LinearAdaptor, NoFineTuning
from .errors import SpecError
from .estimator import FineTuner
from .gamma_path import GammaBounds
from .model_ft import FullFineTune, LoraFineTune
from .nudge import NudgeM, NudgeN

#: The method every other one is compared with (always run, first).
REFERENCE = "none"


@dataclass(frozen=True)
class Param:
    """A per-method integer setting beyond γ: the estimator keyword, its CLI flag, default and
    allowed range [minimum, maximum].

    Several methods may share a flag (e.g. ``--val-k``); the flag then sets all of them."""

    name: str
    flag: str
    default: int
    minimum: int
    maximum: int
    help: str

    def check(self, value) -> int:
        """``value`` as an int, or SpecError naming the flag and the allowed range."""
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) \
                or not self.minimum <= value <= self.maximum:
            raise SpecError(f"{self.flag}: must be an integer in [{self.minimum}, {self.maximum}], "
                            f"got {value!r}")
        return int(value)


@dataclass(frozen=True)
class MethodSpec:
    """One method. ``changes``: what it fine-tunes ("records", "queries" or "nothing");
    ``metric``: how its index scores ("ip" inner product, "cos" cosine = ip on unit-norm
    records); ``objective``: the validation objective, in words; ``gamma``: its γ bounds and
    default choice (None: the method has no γ); ``gamma_flag``: its CLI γ flag
    (``--gamma-<gamma_flag>``); ``params``: further settings; ``default``: in the default list;
    ``slow``: its fit takes tens of seconds to minutes, so the app runs it in the background and
    shows the fast methods' numbers first (``explorer_app/jobs.py``)."""

    name: str
    label: str
    colour: str
    estimator: type[FineTuner]
    changes: str
    metric: str
    objective: str
    gamma: GammaBounds | None = None
    gamma_flag: str | None = None
    params: tuple[Param, ...] = ()
    default: bool = True
    slow: bool = False

    def build(self, **settings) -> FineTuner:
        """A fresh estimator with ``settings`` (its ``__init__`` keywords)."""
        return self.estimator(**settings)


_METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add (or replace) a method; it then appears in the CLI, results JSON and the app."""
    if spec.changes not in ("records", "queries", "nothing") or spec.metric not in ("ip", "cos"):
        raise ValueError(f"{spec.name}: changes must be records/queries/nothing and metric ip/cos")
    if (spec.gamma is None) != (spec.gamma_flag is None):
        raise ValueError(f"{spec.name}: a method with a γ needs a gamma_flag, and only then")
    _METHODS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a method registered with :func:`register` (tests use it to clean up)."""
    if name == REFERENCE:
        raise ValueError(f"{REFERENCE!r} cannot be removed")
    _METHODS.pop(name, None)


def get(name: str) -> MethodSpec:
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(_METHODS)}") from None


def names() -> tuple[str, ...]:
    """Every registered method, the reference first, in registration order."""
    return tuple(_METHODS)


def default_names() -> tuple[str, ...]:
    return tuple(n for n, s in _METHODS.items() if s.default)


def gamma_methods() -> tuple[str, ...]:
    """Methods with a γ (the ones the γ flags, curves, sliders and the sweep apply to)."""
    return tuple(n for n, s in _METHODS.items() if s.gamma is not None)


def label(name: str) -> str:
    return _METHODS[name].label if name in _METHODS else name


def colour(name: str) -> str:
    return _METHODS[name].colour if name in _METHODS else "#17becf"


VAL_K = Param("val_k", "--val-k", 1, 1, 1000, "NUDGE-N validation recall@k (default 1)")

register(MethodSpec(
    REFERENCE, "no fine-tuning", "#7f7f7f", NoFineTuning, changes="nothing", metric="cos",
    objective="none: the original records, searched by cosine similarity"))
register(MethodSpec(
    "adaptor", "adaptor", "#9467bd", LinearAdaptor, changes="queries", metric="cos",
    objective="validation top-1 accuracy (share of validation queries whose first result is "
              "relevant), checked after every training epoch; the best epoch's matrix is kept",
    params=(Param("max_epochs", "--adaptor-epochs", 200, 1, 100_000,
                  "adaptor epoch cap (default 200)"),), slow=True))
register(MethodSpec(
    "nudge-m", "NUDGE-M", "#1f77b4", NudgeM, changes="records", metric="ip",
    objective="validation hit@1 (share of validation queries whose first result is relevant), "
              "known exactly at every γ",
    gamma=NudgeM.bounds, gamma_flag="m"))
register(MethodSpec(
    "nudge-n", "NUDGE-N", "#d62728", NudgeN, changes="records", metric="cos",
    objective="validation recall@val_k (relevant records in the top val_k / min(|R|, val_k)), "
              "on the γ grid",
    gamma=NudgeN.bounds, gamma_flag="n", params=(VAL_K,)))

# Model fine-tuning (needs the 'text' extra and a dataset with texts; not in the default list).
# They re-encode records and queries; "changes" says records, what the index searches.
_EPOCHS = Param("epochs", "--epochs", 3, 1, 1000, "full-ft / lora epoch cap (default 3)")
_BATCH = Param("batch_size", "--batch-size", 32, 2, 4096,
               "full-ft / lora training pairs per batch (default 32)")
_MODEL_FT_OBJECTIVE = ("validation hit@1 (share of validation queries whose first result is "
                       "relevant), with the corpus re-encoded after every epoch; the best epoch's "
                       "weights and corpus encoding are kept")
register(MethodSpec(
    "full-ft", "full fine-tuning", "#8c564b", FullFineTune, changes="records", metric="cos",
    objective=_MODEL_FT_OBJECTIVE, params=(_EPOCHS, _BATCH), default=False, slow=True))
register(MethodSpec(
    "lora", "LoRA", "#e377c2", LoraFineTune, changes="records", metric="cos",
    objective=_MODEL_FT_OBJECTIVE,
    params=(_EPOCHS, _BATCH, Param("lora_rank", "--lora-rank", 8, 1, 256,
                                   "LoRA adapter rank (default 8)")), default=False, slow=True))
