"""Chroma vector store: PersistentClient on a local directory by default, HttpClient when a URL is given."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

import numpy as np

from coe.errors import ConfigError
from coe.settings import settings

from .protocol import Hit

_MARKERS = "coe-markers"


class ChromaStore:
    name = "chroma"

    def __init__(self, path: str | os.PathLike | None = None, *, url: str | None = None, prefix: str = "coe") -> None:
        import chromadb
        from chromadb.config import Settings

        client_settings = Settings(anonymized_telemetry=False)
        url = url or settings().chroma_url
        if url:
            parsed = urlparse(url)
            if not parsed.hostname:
                raise ConfigError(f"invalid Chroma URL: {url}")
            self._client = chromadb.HttpClient(
                host=parsed.hostname, port=parsed.port or 8000, ssl=parsed.scheme == "https", settings=client_settings
            )
            self.location = url
        else:
            from coe.paths import chroma_dir, writable_dir

            from filelock import FileLock

            root = os.fspath(writable_dir(path or chroma_dir(), "exemplar index", "COE_CHROMA_DIR"))
            # Chroma creates its tables on a folder's first open without checking that another process is
            # creating them too ("table collections already exists" when two bank imports start at once).
            with FileLock(os.path.join(root, ".coe-open.lock")):
                self._client = chromadb.PersistentClient(path=root, settings=client_settings)
            self.location = root
        self.prefix = prefix
        self._cols: dict[str, Any] = {}

    def collection(self, name: str):
        """The Chroma collection ``name`` of this store (cosine space), created on first use."""
        full = f"{self.prefix}-{name}"
        if full not in self._cols:
            # embedding_function=None: Chroma's default function would try to download a model.
            self._cols[full] = self._client.get_or_create_collection(
                full, embedding_function=None, metadata={"hnsw:space": "cosine"}
            )
        return self._cols[full]

    def upsert(self, collection, ids, embeddings, metadatas, documents) -> None:
        self.collection(collection).upsert(
            ids=list(ids),
            embeddings=np.asarray(embeddings, dtype=np.float32),
            metadatas=list(metadatas),
            documents=list(documents),
        )

    def query(self, collection, embedding, n, where=None, *, documents: bool = True) -> list[Hit]:
        col = self.collection(collection)
        count = col.count()
        if count == 0:
            return []
        res = col.query(
            query_embeddings=np.asarray(embedding, dtype=np.float32)[None, :],
            n_results=min(n, count),
            where=where or None,
            include=["distances", "metadatas"] + (["documents"] if documents else []),
        )
        docs = res["documents"][0] if documents else [None] * len(res["ids"][0])
        return [
            Hit(id=i, similarity=1.0 - float(d), metadata=m or {}, document=doc)
            for i, d, m, doc in zip(res["ids"][0], res["distances"][0], res["metadatas"][0], docs)
        ]

    def get_embeddings(self, collection, ids) -> dict[str, np.ndarray]:
        if not ids:
            return {}
        res = self.collection(collection).get(ids=list(ids), include=["embeddings"])
        return {i: np.asarray(e, dtype=np.float32) for i, e in zip(res["ids"], res["embeddings"])}

    def get_records(self, collection, ids) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        res = self.collection(collection).get(ids=list(ids), include=["metadatas", "documents"])
        return {
            i: {"metadata": m or {}, "document": d} for i, m, d in zip(res["ids"], res["metadatas"], res["documents"])
        }

    def get_all(self, collection) -> tuple[list[str], np.ndarray, list[dict[str, Any]], list[str | None]]:
        """Every record of a collection: ids, embeddings (rows), metadata and documents."""
        res = self.collection(collection).get(include=["embeddings", "metadatas", "documents"])
        vectors = np.asarray(res["embeddings"], dtype=np.float32) if len(res["ids"]) else np.zeros((0, 0), np.float32)
        return list(res["ids"]), vectors, [m or {} for m in res["metadatas"]], list(res["documents"])

    def existing_ids(self, collection) -> set[str]:
        return set(self.collection(collection).get(include=[])["ids"])

    def count(self, collection) -> int:
        return self.collection(collection).count()

    def get_marker(self, key: str) -> dict[str, Any] | None:
        res = self.collection(_MARKERS).get(ids=[key], include=["metadatas"])
        return (res["metadatas"][0] or {}) if res["ids"] else None

    def set_marker(self, key: str, value: dict[str, Any]) -> None:
        # Chroma records need a vector; markers carry a constant one-dimensional placeholder.
        self.collection(_MARKERS).upsert(
            ids=[key], embeddings=np.ones((1, 1), dtype=np.float32), metadatas=[value], documents=[key]
        )

    def reset(self, collection) -> None:
        full = f"{self.prefix}-{collection}"
        self._cols.pop(full, None)
        try:
            self._client.delete_collection(full)
        except Exception:  # absent collection: nothing to reset
            pass
