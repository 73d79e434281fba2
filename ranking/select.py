"""The learned ranking at run time: the wide pool of one item, scored by the trained ranker."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import numpy as np

from .bank import stats_for
from .candidates import build_pool
from .features import EmbedCache, ItemContext, features, index_vectors
from .model import index_fingerprint, load, ranker_dir

# per embedder and per retriever, for as long as they live (a test's retriever must not inherit another's)
_EMBED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_INDEX: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _load(task: str, retriever, directory: Path | None):
    """The task's ranker for this retriever's banks, if it was trained on the index the retriever searches."""
    if retriever not in _INDEX:
        _INDEX[retriever] = index_fingerprint(retriever)
    return load(task, directory or ranker_dir(getattr(retriever, "banks", ["default"])), index=_INDEX[retriever])


def embed_cache(embedder) -> EmbedCache:
    if embedder not in _EMBED:
        _EMBED[embedder] = EmbedCache(embedder, max_items=50_000)
    return _EMBED[embedder]


def _embed_for(retriever) -> EmbedCache:
    cache = embed_cache(retriever.embedder)
    if not cache.known:
        cache.known = index_vectors(retriever)
    return cache


def warm(retriever, exclude_splits: tuple[str, ...] = ()) -> None:
    """Load now what an item's first ranking loads (both rankers, the bank's counts, the index vectors the
    features read), so that a process can do it while its language model loads."""
    for task in ("distractors", "questions"):
        _load(task, retriever, None)
    stats_for(retriever, exclude_splits)
    _embed_for(retriever)


def rank_pool(
    answer: str,
    question: str,
    material: str,
    exemplars: list,
    retriever,
    *,
    exclude_ids: list[str] | tuple[str, ...] = (),
    exclude_splits: list[str] | tuple[str, ...] = (),
    rejected: set[str] | None = None,
    model_options: list[str] | None = None,
    directory: Path | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Candidates best first (``option``, ``score``, ``sources``), or ``([], reason)`` when no usable ranker
    is there (the caller falls back to the heuristic and records the reason)."""
    ranker, reason = _load("distractors", retriever, directory)
    if ranker is None:
        return [], reason
    stats = stats_for(retriever, exclude_splits)
    pool = [
        c
        for c in build_pool(
            answer, question, material, exemplars, stats, exclude_ids=tuple(exclude_ids), model_options=model_options
        )
        if c.key not in (rejected or set())
    ]
    if not pool:
        return [], None
    ctx = ItemContext(answer, question, material, exemplars, stats, tuple(exclude_ids), _embed_for(retriever))
    return _scored(ranker, "distractor", "option", pool, features(pool, ctx))


def _scored(
    ranker, task: str, field: str, pool: list, matrix: tuple[np.ndarray, list[str]]
) -> tuple[list[dict[str, Any]], str | None]:
    """The pool best first by the ranker's score, each as ``{field: text, score, sources}``; nothing, with the
    reason, when the features computed now are not the ones the ranker was trained on."""
    x, names = matrix
    if names != ranker.features:
        return [], f"the {task} ranker was trained on other features; rebuild it with `coe rank train`"
    scores = ranker.score(x)
    order = np.argsort(-scores, kind="stable")
    return [
        {field: pool[i].text, "score": round(float(scores[i]), 4), "sources": sorted(pool[i].sources)} for i in order
    ], None


def rank_question_pool(
    answer: str,
    material: str,
    exemplars: list,
    retriever,
    *,
    exclude_ids: list[str] | tuple[str, ...] = (),
    exclude_splits: list[str] | tuple[str, ...] = (),
    rejected: set[str] | None = None,
    directory: Path | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Question candidates best first (``text``, ``score``, ``sources``), or ``([], reason)``."""
    from .questions import question_features, question_pool

    ranker, reason = _load("questions", retriever, directory)
    if ranker is None:
        return [], reason
    stats = stats_for(retriever, exclude_splits)
    pool = [
        c
        for c in question_pool(answer, material, exemplars, stats, exclude_ids=tuple(exclude_ids))
        if c.key not in (rejected or set())
    ]
    if not pool:
        return [], None
    ctx = ItemContext(answer, "", material, exemplars, stats, tuple(exclude_ids), _embed_for(retriever))
    return _scored(ranker, "question", "text", pool, question_features(pool, ctx))
