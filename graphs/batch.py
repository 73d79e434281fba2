"""The batch API: many items through the CoE steps, each generation stage ONE batched model call.

``generate_items(items, services, **settings)`` runs the graph's own node functions for every item —
``describe_image`` and ``retrieve`` per item, then ``question``, ``rationale``, ``distractors`` and
``validate`` stage by stage — but the model calls that one stage makes for all items are gathered and
sent as one ``llm.generate_batch`` call (one more per parse-retry round, and one per distractor re-ask
round for the items the validator sent back). A backend with native batching (``TransformersVLLM``)
then decodes the whole batch in one forward pass per token.

Because the nodes themselves run (each item's node in its own thread, its model call parked until the
stage's batch is full), every item gets exactly what the single-item graph gives it: the same prompts,
parsers, validator, retries and repair. An item that fails gets ``error`` (and ``valid: False``)
instead of stopping the rest.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

from coe.errors import CoeError
from coe.plugins.llm.protocol import Generation, GenerationRequest

from . import nodes
from .services import GraphSettings, Services


class _StageBatcher:
    """A stand-in LLM for the node threads of one stage: each ``generate`` waits until every thread
    still running is waiting too, then the last one in sends all their requests as ONE
    ``generate_batch`` call and hands each thread its reply."""

    def __init__(self, llm, threads: int) -> None:
        self._llm = llm
        self._cond = threading.Condition()
        self._running = threads
        self._waiting: list[dict[str, Any]] = []
        self.batches: list[int] = []  # size of each batched call
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:  # name, model_id, supports_images, ...
        return getattr(self._llm, name)

    def _flush_if_ready(self) -> list[dict[str, Any]] | None:
        if self._waiting and len(self._waiting) == self._running:
            batch, self._waiting = self._waiting, []
            return batch
        return None

    def _send(self, batch: list[dict[str, Any]]) -> None:
        t0 = time.perf_counter()
        try:
            gens = self._llm.generate_batch([slot["request"] for slot in batch])
            if len(gens) != len(batch):
                raise RuntimeError(f"generate_batch returned {len(gens)} replies for {len(batch)} requests")
            for slot, gen in zip(batch, gens):
                slot["reply"] = gen
        except BaseException as exc:  # every waiting node sees the failure
            for slot in batch:
                slot["error"] = exc
        self.seconds += time.perf_counter() - t0
        self.batches.append(len(batch))
        with self._cond:
            for slot in batch:
                slot["done"] = True
            self._cond.notify_all()

    def generate(self, request: GenerationRequest) -> Generation:
        slot: dict[str, Any] = {"request": request, "done": False}
        with self._cond:
            self._waiting.append(slot)
            batch = self._flush_if_ready()
        if batch is not None:
            self._send(batch)
        with self._cond:
            self._cond.wait_for(lambda: slot["done"])
        if "error" in slot:
            raise slot["error"]
        return slot["reply"]

    def generate_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        return [self.generate(r) for r in requests]

    def thread_done(self) -> None:
        with self._cond:
            self._running -= 1
            batch = self._flush_if_ready()
        if batch is not None:
            self._send(batch)


def _apply(state: dict[str, Any], update: dict[str, Any]) -> None:
    """Merge a node's update the way the graph's state reducer does (``trace`` is appended)."""
    for key, value in update.items():
        state[key] = state.get("trace", []) + value if key == "trace" else value


def _run_stage(node, idxs: list[int], states: list[dict], config: dict, services: Services,
               errors: dict[int, CoeError], stats: dict[str, Any], name: str) -> None:
    """Run ``node`` for the items ``idxs`` together; their model calls become batched calls."""
    if not idxs:
        return
    batcher = _StageBatcher(services.llm, len(idxs))
    conf = {"configurable": {**config["configurable"], "services": replace(services, llm=batcher)}}
    updates: dict[int, dict[str, Any]] = {}

    def work(i: int) -> None:
        try:
            updates[i] = node(states[i], conf)
        except CoeError as exc:
            errors[i] = exc
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the caller's thread
            errors[i] = exc  # type: ignore[assignment]
        finally:
            batcher.thread_done()

    threads = [threading.Thread(target=work, args=(i,), name=f"coe-{name}-{i}", daemon=True) for i in idxs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in idxs:
        if i in updates:
            _apply(states[i], updates[i])
        elif not isinstance(errors.get(i), CoeError):
            raise errors.pop(i)  # a bug, not a model failure: surface it
    entry = stats.setdefault(name, {"batched_calls": 0, "requests": 0, "seconds": 0.0})
    entry["batched_calls"] += len(batcher.batches)
    entry["requests"] += sum(batcher.batches)
    entry["seconds"] = round(entry["seconds"] + batcher.seconds, 3)


def generate_items(items: list[dict[str, Any]], services: Services, *, raise_errors: bool = False,
                   stats: dict[str, Any] | None = None, **settings: Any) -> list[dict[str, Any]]:
    """Write one multiple-choice item per input dict (the graph's input keys: ``answer``, ``context``,
    ``image_path``, ``question_given``, ``n_distractors``, ``subject``, ``grade``, ``exclude_ids``).

    ``settings`` are ``GraphSettings`` fields (``n_distractors``, ``mode``, ``k``, ``max_retries``, ...).
    ``stats``, when given, gets each stage's batched calls, requests and model seconds.
    With ``raise_errors`` the first failed item's error is raised after the batch has run."""
    unknown = set(settings) - set(GraphSettings.model_fields)
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    config = {"configurable": {**settings, "services": services}}
    stats = stats if stats is not None else {}
    states = [dict(item) for item in items]
    errors: dict[int, CoeError] = {}

    def live(idxs=None) -> list[int]:
        return [i for i in (range(len(states)) if idxs is None else idxs) if i not in errors]

    for i, state in enumerate(states):  # per item, no model call
        try:
            _apply(state, nodes.describe_image(state, config))
            _apply(state, nodes.retrieve(state, config))
        except CoeError as exc:
            errors[i] = exc

    _run_stage(nodes.question, live(), states, config, services, errors, stats, "question")
    _run_stage(nodes.rationale, live(), states, config, services, errors, stats, "rationale")
    pending = live()
    while pending:  # distractors ↔ validate: the items sent back are re-asked together
        _run_stage(nodes.distractors, pending, states, config, services, errors, stats, "distractors")
        for i in live(pending):
            try:
                _apply(states[i], nodes.validate(states[i], config))
            except CoeError as exc:
                errors[i] = exc
        pending = [i for i in live(pending) if nodes.after_validate(states[i]) == "retry"]

    for i, state in enumerate(states):
        if i in errors:
            state.update({"error": str(errors[i]), "valid": False})
    if raise_errors and errors:
        raise errors[min(errors)]
    return states
