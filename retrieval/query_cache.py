"""Query texts to vectors through a bounded LRU cache: one item's steps (and a batch's rows) ask again and again
with the same answer, question and material, and the encoder is most of a retrieval's cost."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from coe.plugins.embed.protocol import TextEmbedder

CACHE_SIZE = 4096  # 4,096 MiniLM vectors: 6 MB


class CachedQueryEmbedder:
    """``embed(texts)`` as the wrapped embedder's, keyed by the exact text. A text missing from the cache is
    encoded on its own: with dynamic int8 quantisation a vector depends on the padding of the batch it was
    encoded in, so encoding each text alone makes its cached vector the same whatever it was asked with (and
    skips encoding the padding of a short answer beside a long passage)."""

    def __init__(self, embedder: TextEmbedder, maxsize: int = CACHE_SIZE) -> None:
        self.embedder = embedder
        self.model_id = embedder.model_id
        self.dim = embedder.dim
        self._one = lru_cache(maxsize=maxsize)(self._encode)

    def _encode(self, text: str) -> np.ndarray:
        vec = np.array(self.embedder.embed([text])[0], dtype=np.float32)
        vec.flags.writeable = False  # shared by every later query with this text
        return vec

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return self.embedder.embed([])
        return np.stack([self._one(t) for t in texts])

    def cache_info(self):
        return self._one.cache_info()
