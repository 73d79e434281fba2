"""The exemplar bank as in-memory matrices beside the vector store: retrieval's hot path without round trips.

``InMemoryBank(store, bank)`` is a read-through view with the store's read API (``query``, ``get_embeddings``,
``get_records``): on first use it loads each of the bank's collections once (ids, unit vectors, metadata),
then answers nearest-neighbour queries with one matrix-vector product (exact, where the store's HNSW index
is approximate) and lookups from memory. Writes and everything else go to the store; after rebuilding the
index in the same process, call ``refresh()``. A store without ``get_all`` is used as it is."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from coe.plugins.store.protocol import Hit


class _Collection:
    def __init__(self, ids: list[str], vectors: np.ndarray, metadatas: list[dict], documents: list[str | None]):
        self.ids = ids
        self.row = {i: n for n, i in enumerate(ids)}
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.metadatas = metadatas
        self.documents = documents
        self.splits = np.array([(m or {}).get("split", "") for m in metadatas])
        # ties go to the smaller id, whatever order the store returned the records in
        self.id_rank = np.argsort(np.argsort(np.array(ids, dtype=object))) if ids else np.zeros(0, dtype=int)


class InMemoryBank:
    def __init__(self, store, bank: str = "default", collections: tuple[str, ...] = ("answer", "question", "context")):
        self.store = store
        self.bank = bank
        self.names = {f"{bank}-{c}" for c in collections}
        self._loaded: dict[str, _Collection] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # writes, markers, counts: the store's own
        return getattr(self.store, name)

    def _collection(self, name: str) -> _Collection | None:
        if name not in self.names or not hasattr(self.store, "get_all"):
            return None
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = _Collection(*self.store.get_all(name))
            return self._loaded[name]

    def refresh(self) -> None:
        """Drop what was loaded (after the index was rebuilt in this process)."""
        with self._lock:
            self._loaded.clear()

    def query(self, collection, embedding, n, where=None, *, documents: bool = True) -> list[Hit]:
        col = self._collection(collection)
        allowed = _split_filter(where)
        if col is None or allowed is False:
            return self.store.query(collection, embedding, n, where, documents=documents)
        if not col.ids:
            return []
        sims = col.vectors @ np.asarray(embedding, dtype=np.float32)
        if allowed is not None:
            sims = np.where(allowed(col.splits), sims, -np.inf)
        n = min(n, int(np.isfinite(sims).sum()))
        if n <= 0:
            return []
        # the rows at or above the n-th best similarity (ties at the cut-off included), ordered by similarity
        # then id: the same order a full sort gives, deterministic, without sorting every row
        cut = np.partition(sims, len(sims) - n)[len(sims) - n]
        rows = np.flatnonzero(sims >= cut)
        top = rows[np.lexsort((col.id_rank[rows], -sims[rows]))][:n]
        return [Hit(id=col.ids[r], similarity=float(sims[r]), metadata=col.metadatas[r] or {},
                    document=col.documents[r] if documents else None) for r in top]

    def get_embeddings(self, collection, ids) -> dict[str, np.ndarray]:
        col = self._collection(collection)
        if col is None:
            return self.store.get_embeddings(collection, ids)
        return {i: col.vectors[col.row[i]] for i in ids if i in col.row}

    def get_records(self, collection, ids) -> dict[str, dict[str, Any]]:
        col = self._collection(collection)
        if col is None:
            return self.store.get_records(collection, ids)
        return {i: {"metadata": col.metadatas[col.row[i]] or {}, "document": col.documents[col.row[i]]}
                for i in ids if i in col.row}


def _split_filter(where: dict | None):
    """None (no filter), a function of the split array, or False for a filter this view does not handle."""
    if not where:
        return None
    cond = where.get("split") if set(where) == {"split"} else None
    if isinstance(cond, dict) and set(cond) <= {"$nin", "$in"}:
        if "$nin" in cond:
            return lambda splits: ~np.isin(splits, list(cond["$nin"]))
        return lambda splits: np.isin(splits, list(cond["$in"]))
    return False
