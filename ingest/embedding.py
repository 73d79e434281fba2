"""coe's passage embedder (MiniLM by default) as a LlamaIndex ``BaseEmbedding``: material passages and
exemplars share one embedding stack and one model file."""

from __future__ import annotations

from functools import cache
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from coe.plugins.embed.protocol import TextEmbedder

# Passages are longer than exemplar fields; MiniLM's position table allows 512, 256 keeps CPU cost modest.
MAX_TOKENS = 256
PASSAGE_BATCH = 16


@cache
def passage_embedder():
    """The text embedder for passages (``COE_TEXT_EMBEDDER``), one per process: loading it costs more than
    embedding a query. A fitted encoder's teacher instead (MiniLM for the default ``minilm-static``): the
    static table is fitted to the exemplar bank's words, and a teacher's own documents bring others."""
    from coe.plugins.registry import configured_name, create, load, resolve

    teacher = getattr(load("text_embedder", configured_name("text_embedder") or ""), "teacher", None)
    return (
        create("text_embedder", teacher, max_length=MAX_TOKENS)
        if teacher
        else resolve("text_embedder", max_length=MAX_TOKENS)
    )


class CoeEmbedding(BaseEmbedding):
    """Wraps any coe text embedder (``embed(list[str]) -> ndarray`` of unit rows)."""

    _embedder: Any = PrivateAttr()

    def __init__(self, embedder: TextEmbedder | None = None, **kwargs: Any) -> None:
        embedder = embedder or passage_embedder()
        kwargs.setdefault("model_name", embedder.model_id)
        # onnxruntime keeps its largest batch's buffers (attention grows with batch x tokens^2): 16 passages
        # of 256 tokens hold an ingest's peak memory to a few hundred MB above the model's
        kwargs.setdefault("embed_batch_size", PASSAGE_BATCH)
        super().__init__(**kwargs)
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "CoeEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.embed([query])[0].tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.embed([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed(list(texts)).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)
