"""A tiny deterministic stand-in for a SentenceTransformer (``encode`` / ``preprocess`` /
``forward`` -> ``sentence_embedding``), so the model fine-tuning plumbing can be checked with
metrics computed by hand: a text's vector is the mean of its words' rows of one embedding table,
and word ``r<i>`` or ``q<i>`` starts as the unit vector e_i."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class FakeEncoder(nn.Module):
    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        words = [f"{p}{i}" for i in range(dim) for p in ("r", "q")]
        self.vocab = {w: k + 1 for k, w in enumerate(words)}  # 0 = padding
        table = torch.zeros(len(words) + 1, dim)
        for w, k in self.vocab.items():
            table[k, int(w[1:])] = 1.0
        self.table = nn.Embedding.from_pretrained(table, freeze=False, padding_idx=0)
        self.dim = dim

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def get_sentence_embedding_dimension(self) -> int:
        return self.dim

    def preprocess(self, texts: list[str]) -> dict[str, torch.Tensor]:
        ids = [[self.vocab[w] for w in t.split()] for t in texts]
        width = max(map(len, ids))
        return {"input_ids": torch.tensor([row + [0] * (width - len(row)) for row in ids])}

    def forward(self, features: dict) -> dict:
        ids = features["input_ids"]
        mask = (ids > 0).float().unsqueeze(-1)
        emb = (self.table(ids) * mask).sum(1) / mask.sum(1)
        return {**features, "sentence_embedding": emb}

    def encode(self, texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=False,
               show_progress_bar=False, **_):
        with torch.no_grad():
            emb = self.forward(self.preprocess(list(texts)))["sentence_embedding"]
        if normalize_embeddings:
            emb = torch.nn.functional.normalize(emb, dim=1)
        return emb.numpy().astype(np.float32)
