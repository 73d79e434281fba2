"""The exemplar bank as in-memory matrices beside the vector store: retrieval's hot path without round trips.

``InMemoryBank(store, bank)`` is a read-through view with the store's read API (``query``, ``get_embeddings``,
``get_records``, ``get_all``): on first use it loads the bank's collections once (ids, unit vectors, metadata,
read once per bank; ``loaded``), from the on-disk copy where it matches the store (``bank_cache``), then
answers nearest-neighbour queries with one matrix-vector product (exact, where the store's HNSW index is
approximate) and lookups from memory. Writes and everything else go to the store; after rebuilding the
index in the same process, call ``refresh()``."""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any

import numpy as np

from coe.plugins.store.protocol import Hit
from coe.text import one_line

from . import bank_cache


class LoadedCollection:
    """One collection held in memory: its ids, vectors (rows), metadata and documents (None: not held)."""

    def __init__(self, ids: list[str], vectors: np.ndarray, metadatas: list[dict], documents: list[str | None] | None):
        self.ids = ids
        self.row = {i: n for n, i in enumerate(ids)}
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.metadatas = metadatas
        self.documents = documents
        self.splits = np.array([(m or {}).get("split", "") for m in metadatas])
        # ties go to the smaller id, whatever order the store returned the records in
        self.id_rank = np.argsort(np.argsort(np.array(ids, dtype=object))) if ids else np.zeros(0, dtype=int)
        self._by_id = np.argsort(np.array(ids, dtype=str)) if ids else np.zeros(0, dtype=int)
        self._sorted_ids = np.array(ids, dtype=str)[self._by_id] if ids else np.zeros(0, dtype=str)

    @cached_property
    def _distinct(self) -> tuple[np.ndarray, np.ndarray]:
        """Each distinct vector once, and each row's index among them: a templated bank repeats most of its
        answers, questions and contexts (ScienceQA: about 7k distinct vectors per field in 19k rows)."""
        # keyed by the rows' bytes, in first-seen order: ``np.unique(axis=0)`` sorts the rows as records, a
        # second per field on first use, for the same grouping
        first: dict[bytes, int] = {}
        inverse = np.fromiter(
            (first.setdefault(row.tobytes(), len(first)) for row in self.vectors),
            dtype=np.intp,
            count=len(self.vectors),
        )
        _, rows = np.unique(inverse, return_index=True)  # each group's first row, groups in order
        return np.ascontiguousarray(self.vectors[rows]), inverse

    def similarities(self, query: np.ndarray) -> np.ndarray:
        """Every row's dot product with ``query``, computed once per distinct vector. ``np.vecdot`` runs one
        single-threaded BLAS dot per vector: on a busy 2-core machine a multi-threaded matrix-vector product
        waits on its threads for ten times as long, and each value is ``np.dot``'s for that pair, the
        same for equal vectors wherever they sit."""
        distinct, inverse = self._distinct
        return np.vecdot(distinct, query)[inverse]

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id (an array of str), -1 where the collection lacks it: one binary search, no dict walk."""
        if not len(self._sorted_ids) or not len(ids):
            return np.full(len(ids), -1, dtype=np.intp)
        pos = np.minimum(np.searchsorted(self._sorted_ids, ids), len(self._sorted_ids) - 1)
        return np.where(self._sorted_ids[pos] == ids, self._by_id[pos], -1)

    @cached_property
    def meta_array(self) -> np.ndarray:
        out = np.empty(len(self.metadatas), dtype=object)
        out[:] = [m or {} for m in self.metadatas]
        return out

    @cached_property
    def columns(self) -> dict[str, np.ndarray]:
        """Per-row metadata the rerank reads, as arrays, built once per collection (on first rerank)."""
        metas = [m or {} for m in self.metadatas]
        return {
            "answer_type": np.array([m.get("answer_type", "") for m in metas], dtype=object),
            "subject": np.array([m.get("subject") or "" for m in metas], dtype=object),
            "grade": np.array([m.get("grade") or "" for m in metas], dtype=object),
            "modality": np.array([m.get("modality", "") for m in metas], dtype=object),
            # exact (question, answer) repeats are one exemplar for diversity, across banks too
            "key": np.array([dedupe_key(m.get("question", ""), m.get("answer", "")) for m in metas], dtype=object),
        }


def dedupe_key(question: str, answer: str) -> str:
    return f"{one_line(question.lower())}\x1f{one_line(answer.lower())}"


class InMemoryBank:
    def __init__(self, store, bank: str = "default", collections: tuple[str, ...] = ("answer", "question", "context")):
        self.store = store
        self.bank = bank
        self.names = {f"{bank}-{c}" for c in collections}
        self._loaded: dict[str, LoadedCollection] = {}
        self._lock = threading.Lock()
        self._stamp: str | None = None  # the store's state when this view first read it (``bank_cache.stamp``)

    def __getattr__(self, name: str) -> Any:  # writes, markers, counts: the store's own
        return getattr(self.store, name)

    def loaded(self, name: str) -> LoadedCollection | None:
        """Collection ``name`` as held in memory (loaded on first use); None for one outside this bank."""
        if name not in self.names:
            return None
        with self._lock:
            if not self._loaded and not self._from_cache():
                # a miss reads every field now (retrieval asks for all of them), so the next process can
                # load the copy in one go
                for each in sorted(self.names, key=lambda n: n != name):
                    self._loaded[each] = self._sibling_view(each) or LoadedCollection(*self.store.get_all(each))
                self._to_cache()
            return self._loaded[name]

    def _from_cache(self) -> bool:
        """Every collection of the bank from the on-disk copy (``bank_cache``), where it matches the store."""
        path = bank_cache.cache_path(self.store, self.bank)
        self._stamp = bank_cache.stamp(self.store, self.bank) if path else None
        found = bank_cache.read(path, self._stamp) if path and self._stamp else None
        if found is None or set(found) != self.names:
            return False
        self._loaded.update({name: LoadedCollection(*records) for name, records in found.items()})
        return True

    def _to_cache(self) -> None:
        """Write what the store gave, unless a build finished while it was read."""
        path = bank_cache.cache_path(self.store, self.bank)
        if not path or not self._stamp or bank_cache.stamp(self.store, self.bank) != self._stamp:
            return
        records = {name: (c.ids, c.vectors, c.metadatas, c.documents) for name, c in self._loaded.items()}
        bank_cache.write(path, self._stamp, records)

    def _sibling_view(self, name: str) -> LoadedCollection | None:
        """``name`` with the metadata of an already loaded collection of the bank, asking the store for its
        vectors alone: every text field of an exemplar carries the same metadata, and reading it again from
        Chroma is most of a collection's load (a second or two per field on first use). None unless both
        hold exactly the same records."""
        sibling = next(iter(self._loaded.values()), None)
        if sibling is None or not sibling.ids or self.store.count(name) != len(sibling.ids):
            return None
        vectors = self.store.get_embeddings(name, sibling.ids)
        if len(vectors) != len(sibling.ids):
            return None
        stacked = np.stack([vectors[i] for i in sibling.ids])
        return LoadedCollection(sibling.ids, stacked, sibling.metadatas, None)

    def refresh(self) -> None:
        """Drop what was loaded (after the index was rebuilt in this process)."""
        with self._lock:
            self._loaded.clear()
            self._stamp = None

    def query(self, collection, embedding, n, where=None, *, documents: bool = True) -> list[Hit]:
        col = self.loaded(collection)
        allowed = _split_filter(where)
        if col is None or allowed is False or (documents and col.documents is None):
            return self.store.query(collection, embedding, n, where, documents=documents)
        if not col.ids:
            return []
        sims = col.similarities(np.asarray(embedding, dtype=np.float32))
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
        return [
            Hit(
                id=col.ids[r],
                similarity=float(sims[r]),
                metadata=col.metadatas[r] or {},
                document=col.documents[r] if documents and col.documents is not None else None,
            )
            for r in top
        ]

    def get_embeddings(self, collection, ids) -> dict[str, np.ndarray]:
        col = self.loaded(collection)
        if col is None:
            return self.store.get_embeddings(collection, ids)
        return {i: col.vectors[col.row[i]] for i in ids if i in col.row}

    def get_records(self, collection, ids) -> dict[str, dict[str, Any]]:
        col = self.loaded(collection)
        if col is None or col.documents is None:
            return self.store.get_records(collection, ids)
        return {
            i: {"metadata": col.metadatas[col.row[i]] or {}, "document": col.documents[col.row[i]]}
            for i in ids
            if i in col.row
        }

    def get_all(self, collection) -> tuple[list[str], np.ndarray, list[dict[str, Any]], list[str | None]]:
        col = self.loaded(collection)
        if col is None or col.documents is None:
            return self.store.get_all(collection)
        return list(col.ids), col.vectors, list(col.metadatas), list(col.documents)


def collection_rows(view, collection: str, ids: np.ndarray) -> tuple[LoadedCollection, np.ndarray]:
    """The collection holding ``ids`` and each id's row in it (-1: absent). An ``InMemoryBank`` answers from
    what it loaded; any other store is asked for just these records, which are then held the same way."""
    col = view.loaded(collection) if isinstance(view, InMemoryBank) else None
    if col is None:
        want = ids.tolist()
        records, embeddings = view.get_records(collection, want), view.get_embeddings(collection, want)
        have = [i for i in want if i in records and i in embeddings]
        vectors = np.stack([embeddings[i] for i in have]) if have else np.zeros((0, 0), dtype=np.float32)
        col = LoadedCollection(have, vectors, [records[i]["metadata"] for i in have], [None] * len(have))
    return col, col.rows_of(ids)


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
