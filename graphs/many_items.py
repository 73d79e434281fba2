"""The batch API: many items through the compiled CoE graph at once.

``generate_items(items, services, **settings)`` runs ``graph.batch`` — the same compiled graph
``graph.invoke`` runs, items side by side in a thread pool — so every item gets exactly what the
single-item graph gives it. Batching is the backend's business: a backend with native batching
(``native_batching = True``, e.g. ``TransformersVLLM``) is wrapped in ``MicroBatchLLM``, which gathers
the model calls the items make at the same time into one ``generate_batch`` call; the others
(llama.cpp, a model server) take the concurrent calls as they come. An item that fails with a
``CoeError`` gets ``error`` (and ``valid: False``) instead of stopping the rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from uuid import UUID

from coe.plugins.llm.caller_thread import served
from coe.plugins.llm.request_batcher import MicroBatchLLM
from langchain_core.callbacks import BaseCallbackHandler

from coe.errors import CoeError

from .build import graph
from .services import Services
from .settings import check_settings


class _ItemDone(BaseCallbackHandler):
    """Tells ``on_done`` when this item's graph run ends (its first chain run is the graph itself), so the
    micro-batcher knows how many items are still asking."""

    run_inline = True

    def __init__(self, on_done) -> None:
        self._root: UUID | None = None
        self._on_done = on_done

    def on_chain_start(self, serialized, inputs, *, run_id: UUID, **kwargs: Any) -> None:
        if self._root is None:
            self._root = run_id

    def _end(self, run_id: UUID) -> None:
        if run_id == self._root:
            self._root = None
            self._on_done()

    def on_chain_end(self, outputs, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_chain_error(self, error, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)


def batching_llm(llm: Any) -> MicroBatchLLM | None:
    """The micro-batcher for ``llm``: itself when it is one, a new one when the backend batches natively."""
    if isinstance(llm, MicroBatchLLM):
        return llm
    return MicroBatchLLM(llm) if getattr(llm, "native_batching", False) else None


def _prepared(items: list[dict[str, Any]], services: Services, max_concurrency: int | None, settings: dict[str, Any]):
    check_settings(settings)
    if max_concurrency is not None and max_concurrency < 1:
        raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
    batcher = batching_llm(services.llm)
    if batcher is not None:
        services = replace(services, llm=batcher)
        max_concurrency = max_concurrency or batcher.max_batch_size
    base: dict[str, Any] = {"configurable": dict(settings)}
    if max_concurrency is not None:
        base["max_concurrency"] = max_concurrency
    configs: list[dict[str, Any]] = [{**base, "configurable": dict(base["configurable"])} for _ in items]
    if batcher is not None:
        # Items still to finish, of which at most max_concurrency run at once: when that many wait on
        # the model, nobody else is about to ask and the batch goes without waiting out the timer.
        remaining = [len(items)]
        lock = threading.Lock()
        at_once = max_concurrency or batcher.max_batch_size  # as set above

        def item_done() -> None:
            with lock:
                remaining[0] -= 1
                batcher.set_callers(min(at_once, remaining[0]))

        batcher.set_callers(min(at_once, len(items)))
        for config in configs:
            config["callbacks"] = [_ItemDone(item_done)]
    return services, batcher, configs, max_concurrency


def _result(item: dict[str, Any], out: Any) -> tuple[dict[str, Any], CoeError | None]:
    if isinstance(out, CoeError):
        return {**item, "error": str(out), "valid": False}, out
    if isinstance(out, BaseException):
        raise out  # a bug, not a model failure: surface it
    return out, None


def iter_items(
    items: list[dict[str, Any]], services: Services, *, max_concurrency: int | None = None, **settings: Any
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, result)`` for each item as soon as its graph run ends (``graph.batch_as_completed``), so
    a caller can keep each finished item before the others are done. Results are as ``generate_items``."""
    items = [dict(item) for item in items]
    if not items:
        return
    services, batcher, configs, _ = _prepared(items, services, max_concurrency, settings)

    def completed():
        return graph.batch_as_completed(items, configs, return_exceptions=True, context=services)

    def run(put):
        for pair in completed():
            put(pair)

    try:
        # with a micro-batcher, its batches go out from this thread (``caller_thread``) between the results
        for i, out in completed() if batcher is None else served(batcher, run):
            yield i, _result(items[i], out)[0]
    finally:
        if batcher is not None:
            batcher.set_callers(None)


def generate_items(
    items: list[dict[str, Any]],
    services: Services,
    *,
    raise_errors: bool = False,
    stats: dict[str, Any] | None = None,
    max_concurrency: int | None = None,
    **settings: Any,
) -> list[dict[str, Any]]:
    """Write one multiple-choice item per input dict (the graph's input keys: ``answer``, ``context``,
    ``image_path``, ``question_given``, ``n_distractors``, ``subject``, ``grade``, ``exclude_ids``).

    ``settings`` are ``GraphSettings`` fields (``n_distractors``, ``mode``, ``k``, ``max_retries``, ...); an
    unknown or ill-typed one is an ``InputError`` before any item runs.
    ``max_concurrency`` items run at once (default: the micro-batch size for a natively batching
    backend, else LangChain's default pool). ``stats``, when given, gets ``items``, ``failed``,
    ``seconds``, ``max_concurrency`` and ``batching`` (the micro-batcher's ``stats``, or None).
    Each result is the graph's output state; an item whose run raised a ``CoeError`` is its input plus
    ``error`` and ``valid: False``, and with ``raise_errors`` the first such error is raised after the
    batch. Any other exception is a bug and is raised after the batch."""
    items = [dict(item) for item in items]
    if not items:
        _prepared(items, services, max_concurrency, settings)  # still reject bad settings
        return []
    services, batcher, configs, max_concurrency = _prepared(items, services, max_concurrency, settings)
    t0 = time.perf_counter()
    try:
        if batcher is None:
            outputs = graph.batch(items, configs, return_exceptions=True, context=services)
        else:  # the batches go out from this thread (``caller_thread``), the items run beside it
            (outputs,) = served(
                batcher, lambda put: put(graph.batch(items, configs, return_exceptions=True, context=services))
            )
    finally:
        if batcher is not None:
            batcher.set_callers(None)
    results: list[dict[str, Any]] = []
    errors: list[CoeError] = []
    for item, out in zip(items, outputs):
        result, error = _result(item, out)
        results.append(result)
        if error is not None:
            errors.append(error)
    if stats is not None:
        stats.update(
            items=len(items),
            failed=len(errors),
            seconds=round(time.perf_counter() - t0, 3),
            max_concurrency=max_concurrency,
            batching=batcher.stats if batcher is not None else None,
        )
    if raise_errors and errors:
        raise errors[0]
    return results
