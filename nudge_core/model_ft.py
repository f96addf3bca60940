"""Fine-tuning the embedding model itself: all weights (``full-ft``) or LoRA adapters (``lora``).

Both train the bundled all-MiniLM-L6-v2 (:mod:`nudge_core.text_embed`) on the training split's
(query text, relevant record text) pairs with sentence-transformers'
``MultipleNegativesRankingLoss`` (in-batch negatives, scale 20), AdamW, a seeded shuffle. After
every epoch (and before the first, "epoch 0" = the untuned model) the whole corpus is re-encoded
and the validation objective measured: hit@1, the share of validation queries whose first result
is relevant, exactly the adaptor's objective. The best epoch's weights are kept (ties keep the
earlier epoch) and training stops after ``patience`` epochs without improvement. The best epoch's
corpus encoding is what ``index_`` searches, so the evaluated records are the re-encoded ones.

The loop is written out (rather than sentence-transformers' ``SentenceTransformerTrainer``) so it
needs no ``datasets`` package, keeps the best checkpoint in memory, reports progress per batch and
can be cancelled between batches (``should_stop``); the loss, tokenisation and encoding are
sentence-transformers' own, the adapters peft's (``get_peft_model`` on the transformer, since
transformers 5.x refuses peft < 0.22 in ``add_adapter`` and the registry has no 0.22 yet).

Queries: :meth:`ModelFineTuner.transform_queries` gets query *embeddings* (the contract), so the
estimator encodes, at the end of ``fit``, the text of every query of the dataset with the tuned
model and maps each query's original embedding row (its bytes) to the tuned one. Queries it never
saw (a separate OOD query set) are encoded from their texts by :meth:`prepare_queries`, which
:func:`~nudge_core.experiment.run_experiment` calls before searching them; without texts they
raise a DataError naming how many.

Record texts come from the dataset's ``corpus.jsonl``; the bundled example, which stores no
texts, has them rebuilt by :func:`nudge_core.examples.stdlib_docs.rebuilt_texts` (exactly the text
that was embedded).
"""

from __future__ import annotations

import copy
import random
import time

import numpy as np

from .data import QuerySet
from .errors import DataError
from .files import excerpt
from .estimator import FineTuner
from .examples.stdlib_docs import rebuilt_texts
from .index import ExactIndex
from .progress import Progress, or_silent
from .text_embed import Cancelled, EmbedSettings, encode, load_model, set_threads

#: Module names of the BERT attention projections the LoRA adapters wrap.
LORA_TARGETS = ("query", "key", "value")


def _check_int(name: str, value, low: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


class ModelFineTuner(FineTuner):
    """Fine-tune the embedding model (see the module docstring); ``lora_rank`` None = all weights.

    Parameters: ``epochs`` (3, the cap), ``batch_size`` (32 pairs), ``lr`` (2e-5; LoRA 1e-4),
    ``patience`` (1), ``seed`` (0), ``threads`` (torch threads; None = every CPU this process
    may use), ``model_dir`` (None = the bundled model), ``model`` (an already loaded
    SentenceTransformer-like module with ``encode``/``preprocess``; a copy is trained — for tests),
    ``progress`` and ``should_stop`` (callbacks).

    Fitted: ``index_`` (the best epoch's unit-norm corpus encoding), ``model_`` (the tuned model),
    ``val_curve_`` ((epochs run + 1, 2): epoch, validation hit@1), ``best_epoch_``,
    ``objective_``, ``epochs_run_``, ``trainable_parameters_``, ``train_seconds_``,
    ``encode_seconds_`` (every corpus and query encoding), ``fit_seconds_`` (both).
    """

    needs_dataset = True
    lora_rank = None

    def __init__(self, epochs: int = 3, batch_size: int = 32, lr: float = 2e-5, patience: int = 1,
                 seed: int = 0, threads: int | None = None, model_dir=None, model=None,
                 progress: Progress | None = None, should_stop=None) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.patience = patience
        self.seed = seed
        self.threads = threads
        self.model_dir = model_dir
        self.model = model
        self.progress = progress
        self.should_stop = should_stop

    def _check_params(self) -> None:
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 2)
        _check_int("patience", self.patience, 1)
        if self.threads is not None:
            _check_int("threads", self.threads, 1)
        if not isinstance(self.lr, (int, float)) or not np.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")

    # -- what the subclasses change -------------------------------------------------------
    def _prepare(self, model):
        """The model to train (LoRA wraps it); every parameter trains here."""
        return model

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, records: np.ndarray, train: QuerySet, val: QuerySet, *,
            normalized: np.ndarray | None = None, dataset=None) -> "ModelFineTuner":
        """Train on ``dataset``'s texts (the :class:`~nudge_core.data.Dataset` ``records``,
        ``train`` and ``val`` come from; ``records`` themselves are only checked for shape)."""
        self._check_params()
        corpus_texts, query_texts = self._texts(records, train, val, dataset)
        if len(train) == 0 or len(val) == 0:
            raise DataError("model fine-tuning needs training and validation queries", "split")
        report = or_silent(self.progress)
        import torch
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

        t_start = time.perf_counter()
        set_threads(self.threads)
        torch.manual_seed(self.seed)
        random.seed(self.seed)
        rng = np.random.default_rng(self.seed)
        base = copy.deepcopy(self.model) if self.model is not None else load_model(self.model_dir)
        model = self._prepare(base)
        params = [p for p in model.parameters() if p.requires_grad]
        self.trainable_parameters_ = int(sum(p.numel() for p in params))
        loss_fn = MultipleNegativesRankingLoss(model, scale=20.0)
        optimizer = torch.optim.AdamW(params, lr=self.lr)
        pair_q, pair_r = train.pairs()
        cut = EmbedSettings().max_text_chars  # as encode() cuts them
        anchors = [query_texts[train.ids[i]][:cut] for i in pair_q]
        positives = [corpus_texts[dataset.corpus_ids[r]][:cut] for r in pair_r]
        encode_s = train_s = 0.0
        steps = max(1, -(-len(anchors) // self.batch_size))
        total_units = self.epochs + 2  # epoch-0 validation, epochs, final query encoding

        def validate(epoch: int) -> tuple[float, np.ndarray]:
            nonlocal encode_s
            t0 = time.perf_counter()
            model.eval()
            sub = lambda f, m: report((epoch + 0.5 + 0.5 * f) / total_units, f"epoch {epoch}: {m}")
            corpus = self._encode(model, list(corpus_texts.values()), sub, "records")
            index = ExactIndex(corpus)
            q = self._encode(model, [query_texts[i] for i in val.ids], None, "queries")
            rows = index.search(q, 1)[1]
            encode_s += time.perf_counter() - t0
            return float(np.mean(val.relevance.gains(rows)[:, 0] > 0)), corpus

        best_acc, best_corpus = validate(0)
        best_state, best_epoch, waited, curve = None, 0, 0, [(0, best_acc)]
        for epoch in range(1, self.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            order = rng.permutation(len(anchors))
            for step, start in enumerate(range(0, len(order), self.batch_size)):
                if self.should_stop is not None and self.should_stop():
                    raise Cancelled(f"cancelled in epoch {epoch}")
                batch = order[start:start + self.batch_size]
                if len(batch) < 2:
                    continue
                features = [_to(model.preprocess([texts[i] for i in batch]), model.device)
                            for texts in (anchors, positives)]
                loss = loss_fn(features, None)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                report((epoch + 0.5 * (step + 1) / steps) / total_units,
                       f"epoch {epoch}/{self.epochs}: batch {step + 1}/{steps}, loss {loss.item():.3f}")
            train_s += time.perf_counter() - t0
            acc, corpus = validate(epoch)
            curve.append((epoch, acc))
            if acc > best_acc:
                best_acc, best_corpus, best_epoch, waited = acc, corpus, epoch, 0
                best_state = {n: p.detach().clone() for n, p in model.named_parameters()
                              if p.requires_grad}
            else:
                waited += 1
                if waited >= self.patience:
                    break
        self.epochs_run_ = len(curve) - 1
        if best_epoch != self.epochs_run_:
            self._restore(model, best_state)
        model.eval()
        t0 = time.perf_counter()
        self._query_map = self._encode_queries(model, dataset, query_texts, report, total_units)
        encode_s += time.perf_counter() - t0
        self.model_ = model
        self.index_ = ExactIndex(best_corpus)
        self.best_epoch_ = best_epoch
        self.objective_ = best_acc
        self.val_curve_ = np.array(curve, dtype=np.float64)
        self.train_seconds_, self.encode_seconds_ = train_s, encode_s
        self.fit_seconds_ = time.perf_counter() - t_start
        report(1.0, f"best epoch {best_epoch} (validation hit@1 {best_acc:.3f})")
        return self

    def _restore(self, model, best_state) -> None:
        """Put the best epoch's trainable weights back (None = the untuned start, epoch 0)."""
        import torch

        if best_state is None:
            best_state = self._initial_state
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in best_state:
                    p.copy_(best_state[name])

    def _encode(self, model, texts: list[str], progress, what: str) -> np.ndarray:
        return encode(model, texts, settings=EmbedSettings(), batch_size=64, progress=progress,
                      what=what, should_stop=self.should_stop)

    def _encode_queries(self, model, dataset, query_texts, report, total_units) -> dict[bytes, np.ndarray]:
        """Original query embedding row (bytes) -> tuned embedding, for every query with a text."""
        ids = [q for q in dataset.query_ids if q in query_texts]
        sub = lambda f, m: report((total_units - 1 + f) / total_units, f"re-encoding queries: {m}")
        tuned = self._encode(model, [query_texts[q] for q in ids], sub, "queries")
        rows = [dataset.query_row[q] for q in ids]
        original = np.asarray(dataset.query_emb[rows], dtype=np.float32)
        return {o.tobytes(): t for o, t in zip(original, tuned)}

    def _texts(self, records, train, val, dataset) -> tuple[dict[str, str], dict[str, str]]:
        """The corpus texts in row order and the query texts; DataError when any is missing."""
        name = type(self).__name__
        if dataset is None:
            raise DataError(f"{name} fine-tunes the model on texts; call fit(..., dataset=ds)",
                            "dataset")
        corpus_text = dataset.corpus_text or rebuilt_texts(dataset)
        if not corpus_text or not dataset.query_text:
            raise DataError("model fine-tuning needs the dataset's texts (corpus.jsonl and "
                            "queries.jsonl); this dataset has embeddings only", dataset.source or
                            dataset.name)
        if records.shape[0] != len(dataset.corpus_ids):
            raise DataError(f"records have {records.shape[0]} rows but the dataset has "
                            f"{len(dataset.corpus_ids)} records", "records")
        missing = [c for c in dataset.corpus_ids if not (corpus_text.get(c) or "").strip()]
        missing_q = [q for q in (*train.ids, *val.ids) if not dataset.query_text.get(q, "").strip()]
        for what, ids in (("records", missing), ("training/validation queries", missing_q)):
            if ids:
                raise DataError(f"{len(ids)} {what} have no text, e.g. {', '.join(map(excerpt, ids[:3]))}; "
                                "model fine-tuning needs a text for each", dataset.source or dataset.name)
        corpus = {c: corpus_text[c] for c in dataset.corpus_ids}
        return corpus, dataset.query_text

    # -- after fitting ---------------------------------------------------------------------
    def transform_queries(self, queries: np.ndarray) -> np.ndarray:
        """The tuned model's encodings of ``queries`` (matched by their original embedding)."""
        queries = np.asarray(queries, dtype=np.float32)
        out = [self._query_map.get(row.tobytes()) for row in queries]
        unknown = sum(v is None for v in out)
        if unknown:
            raise DataError(f"{unknown} of {len(queries)} queries are not queries of the fitted "
                            "dataset; a fine-tuned model can only search queries whose text it "
                            "encoded", type(self).__name__)
        return np.stack(out) if out else np.zeros((0, self.index_.dim), np.float32)

    def prepare_queries(self, queries: QuerySet) -> None:
        """Encode with the tuned model the queries of ``queries`` that ``fit`` did not see (a
        separate OOD set), from ``queries.texts``; DataError naming those without a text."""
        emb = np.asarray(queries.emb, dtype=np.float32)
        unseen = [j for j, row in enumerate(emb) if row.tobytes() not in self._query_map]
        if not unseen:
            return
        texts = queries.texts or {}
        missing = [queries.ids[j] for j in unseen if not texts.get(queries.ids[j], "").strip()]
        if missing:
            raise DataError(f"{len(missing)} of {len(queries)} queries have no text (e.g. "
                            f"{', '.join(map(excerpt, missing[:3]))}), so the fine-tuned model "
                            "cannot encode them; give the query set a queries.jsonl",
                            type(self).__name__)
        tuned = self._encode(self.model_, [texts[queries.ids[j]] for j in unseen], None, "queries")
        for j, vec in zip(unseen, tuned):
            self._query_map[emb[j].tobytes()] = vec

    def describe(self) -> dict:
        return {"trainable_parameters": self.trainable_parameters_, "epochs_run": self.epochs_run_,
                "best_epoch": self.best_epoch_, "validation_curve": self.val_curve_.tolist(),
                "train_seconds": round(self.train_seconds_, 3),
                "encode_seconds": round(self.encode_seconds_, 3), "lora_rank": self.lora_rank}


def _to(features: dict, device) -> dict:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}


class FullFineTune(ModelFineTuner):
    """``full-ft``: every weight of the model trains."""

    def _prepare(self, model):
        self._initial_state = {n: p.detach().clone() for n, p in model.named_parameters()}
        return model


class LoraFineTune(ModelFineTuner):
    """``lora``: LoRA adapters (peft) of rank ``lora_rank`` (alpha = 2 x rank, no dropout) on the
    attention query/key/value projections; everything else frozen. ``lr`` defaults to 1e-4."""

    def __init__(self, epochs: int = 3, batch_size: int = 32, lora_rank: int = 8, lr: float = 1e-4,
                 patience: int = 1, seed: int = 0, threads: int | None = None, model_dir=None,
                 model=None, progress: Progress | None = None, should_stop=None) -> None:
        super().__init__(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed,
                         threads=threads, model_dir=model_dir, model=model, progress=progress,
                         should_stop=should_stop)
        self.lora_rank = lora_rank

    def _check_params(self) -> None:
        super()._check_params()
        _check_int("lora_rank", self.lora_rank, 1)

    def _prepare(self, model):
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise DataError("LoRA needs peft (the 'text' extra: pip install -e '.[text]')",
                            "peft") from None
        import torch

        torch.manual_seed(self.seed)  # the adapters' initialisation
        transformer = model[0]
        config = LoraConfig(r=int(self.lora_rank), lora_alpha=2 * int(self.lora_rank),
                            lora_dropout=0.0, target_modules=list(LORA_TARGETS))
        transformer.model = get_peft_model(transformer.model, config)
        self._initial_state = {n: p.detach().clone() for n, p in model.named_parameters()
                               if p.requires_grad}
        return model
