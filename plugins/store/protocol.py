"""Vector stores hold one collection per retrieval field; callers always bring their own embeddings."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel


class Hit(BaseModel):
    id: str
    similarity: float  # cosine similarity in [-1, 1]
    metadata: dict[str, Any] = {}
    document: str | None = None


@runtime_checkable
class VectorStore(Protocol):
    name: str

    def upsert(self, collection: str, ids: list[str], embeddings: np.ndarray,
               metadatas: list[dict[str, Any]], documents: list[str]) -> None: ...

    def query(self, collection: str, embedding: np.ndarray, n: int,
              where: dict[str, Any] | None = None, *, documents: bool = True) -> list[Hit]: ...

    def get_embeddings(self, collection: str, ids: list[str]) -> dict[str, np.ndarray]: ...

    def get_records(self, collection: str, ids: list[str]) -> dict[str, dict[str, Any]]: ...

    def count(self, collection: str) -> int: ...

    def get_marker(self, key: str) -> dict[str, Any] | None: ...

    def set_marker(self, key: str, value: dict[str, Any]) -> None: ...

    def reset(self, collection: str) -> None: ...
