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
    """Collections of records (id, unit vector, metadata, document) searched by cosine similarity
    (``coe.vector_stores``). Plugins take the keyword arguments ``path`` (a local directory to keep the records
    in; None: their default) and ``prefix`` (of the collection names, default ``coe``), which is how the CLI
    and the services build one."""

    name: str
    location: str  # where the records are (a directory or a URL), for messages

    def upsert(
        self,
        collection: str,
        ids: list[str],
        embeddings: np.ndarray,
        metadatas: list[dict[str, Any]],
        documents: list[str],
    ) -> None: ...

    def query(
        self,
        collection: str,
        embedding: np.ndarray,
        n: int,
        where: dict[str, Any] | None = None,
        *,
        documents: bool = True,
    ) -> list[Hit]: ...

    def get_embeddings(self, collection: str, ids: list[str]) -> dict[str, np.ndarray]: ...

    def get_records(self, collection: str, ids: list[str]) -> dict[str, dict[str, Any]]: ...

    def get_all(self, collection: str) -> tuple[list[str], np.ndarray, list[dict[str, Any]], list[str | None]]:
        """Every record: ids, embeddings (rows), metadata and documents (what retrieval holds in memory)."""
        ...

    def existing_ids(self, collection: str) -> set[str]: ...

    def count(self, collection: str) -> int: ...

    def get_marker(self, key: str) -> dict[str, Any] | None: ...

    def set_marker(self, key: str, value: dict[str, Any]) -> None: ...

    def reset(self, collection: str) -> None: ...
