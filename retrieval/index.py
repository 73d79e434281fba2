"""Build the exemplar bank in the vector store: one collection per retrieval field."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

import numpy as np

from .exemplars import Exemplar

FIELDS = ("answer", "question", "context")
INDEX_FORMAT = "coe-exemplars-v1"
BATCH = 512


def field_text(ex: Exemplar, field: str) -> str:
    if field == "answer":
        return ex.answer
    if field == "question":
        return ex.question
    return ex.context


def fingerprint(exemplars: list[Exemplar], embedder_id: str) -> str:
    h = hashlib.sha256(f"{INDEX_FORMAT}|{embedder_id}".encode())
    for ex in exemplars:
        h.update(f"|{ex.id}:{ex.split}:{ex.question}:{ex.answer}".encode())
    return h.hexdigest()


def embed_unique(embedder, texts: list[str]) -> np.ndarray:
    """Many ScienceQA answers and questions repeat; embed each distinct string once."""
    uniq = list(dict.fromkeys(texts))
    vecs = embedder.embed(uniq)
    pos = {t: i for i, t in enumerate(uniq)}
    return vecs[[pos[t] for t in texts]]


def build_index(exemplars: Iterable[Exemplar], *, embedder, store, bank: str = "default",
                progress: Callable[[str, int, int], None] | None = None, force: bool = False) -> dict:
    """Upsert the bank; already indexed ids are kept, so an interrupted build resumes where it stopped."""
    exemplars = list(exemplars)
    fp = fingerprint(exemplars, embedder.model_id)
    marker = store.get_marker(f"index-{bank}")
    if marker and marker.get("fingerprint") == fp and not force:
        return {"status": "up to date", "exemplars": len(exemplars), "added": 0}
    if force or (marker and marker.get("fingerprint") != fp):
        for f in FIELDS:
            store.reset(f"{bank}-{f}")
    added = 0
    for field in FIELDS:
        col = f"{bank}-{field}"
        have = store.existing_ids(col)
        todo = [ex for ex in exemplars if ex.id not in have and field_text(ex, field).strip()]
        total = len(todo)
        if progress:
            progress(field, 0, total)
        for start in range(0, total, BATCH):
            chunk = todo[start:start + BATCH]
            texts = [field_text(ex, field) for ex in chunk]
            store.upsert(col, [ex.id for ex in chunk], embed_unique(embedder, texts),
                         [ex.to_metadata() for ex in chunk], texts)
            added += len(chunk)
            if progress:
                progress(field, min(start + BATCH, total), total)
    store.set_marker(f"index-{bank}", {"fingerprint": fp, "exemplars": len(exemplars),
                                       "embedder": embedder.model_id})
    return {"status": "built", "exemplars": len(exemplars), "added": added}


def default_bank(dataset, splits: tuple[str, ...] = ("train", "val")) -> list[Exemplar]:
    out: list[Exemplar] = []
    for split in splits:
        out.extend(Exemplar.from_problem(p) for p in dataset.split(split))
    return out
