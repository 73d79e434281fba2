"""Micro-batching: concurrent ``generate`` calls from many threads become one ``generate_batch`` call.

``MicroBatchLLM(llm)`` wraps a backend whose ``generate_batch`` really batches (``native_batching``,
e.g. ``TransformersVLLM``: one forward pass per token for the whole batch). Each thread that runs the
graph for one item calls ``generate`` as usual; the call parks until a batch goes out, and a batch goes
out when

- it holds ``max_batch_size`` requests, or
- every caller announced with ``set_callers(n)`` is waiting (nobody else is about to ask), or
- no request has arrived for ``max_wait_ms`` (counted from when the backend was last free), or
- ``max_hold_ms`` have passed since the first waiting request (counted the same way).

A lone caller is held ``max_wait_ms``. Callers that arrive one after another, each within ``max_wait_ms`` of
the last (items whose retrieval and prompt building, run by many threads under one interpreter lock, end a
few milliseconds apart), join one batch instead of the first few leaving alone: a batch that leaves early
splits the items into groups that then reach each later step at different times, and every step costs a
call per group.

Batches go to the backend one at a time (it decodes one batch at a time anyway), always from the same
thread: the batcher's own, or the caller's while ``caller_thread.served`` runs the items beside it (what
``generate_items`` does); requests that arrive meanwhile gather for the next one. Whichever waiting thread
finds the batch ready hands it to that thread and gives every caller its own reply, or the backend's
exception. Requests with different sampling settings may share a batch: the backend splits them
(``TransformersVLLM`` groups by decoding settings).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .protocol import Generation, GenerationRequest


class _Slot:
    __slots__ = ("request", "owner", "queued_at", "reply", "error", "done")

    def __init__(self, request: GenerationRequest, owner: int, queued_at: float) -> None:
        self.request, self.owner, self.queued_at = request, owner, queued_at
        self.reply: Generation | None = None
        self.error: BaseException | None = None
        self.done = False


class MicroBatchLLM:
    """An LLM plugin that gathers concurrent requests into batched calls of the wrapped ``llm``.

    Every other attribute (``name``, ``model_id``, ``supports_images``, ``score_options``,
    ``count_tokens``, ...) is the wrapped backend's. ``score_options`` is not batched, but it runs on the
    thread that sends the batches, so PyTorch keeps one thread team (``caller_thread``)."""

    def __init__(
        self,
        llm: Any,
        *,
        max_batch_size: int | None = None,
        max_wait_ms: float = 50.0,
        max_hold_ms: float | None = None,
    ) -> None:
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        hold = 10 * max_wait_ms if max_hold_ms is None else max_hold_ms
        if hold < max_wait_ms:
            raise ValueError(f"max_hold_ms must be >= max_wait_ms ({max_wait_ms}), got {hold}")
        self.llm = llm
        size = max_batch_size or getattr(llm, "max_batch_size", None) or 16
        self.max_batch_size = max(1, int(size))
        self.max_wait_ms = float(max_wait_ms)
        self.max_hold_ms = float(hold)
        self._cond = threading.Condition()
        self._pending: list[_Slot] = []
        self._busy = False  # a batch is at the backend
        self._free_since = float("-inf")
        self._callers: int | None = None
        self._sizes: list[int] = []
        self._seconds = 0.0
        # Every batch runs on this one thread, whichever caller sends it. PyTorch's CPU kernels keep an
        # OpenMP team per calling thread, and a team whose thread just sent a batch keeps spinning for
        # a while: with each batch sent from another item's thread, those teams took the cores from the
        # next batch (the quick Qwen2-VL bench's model calls ran 20-30 % slower than the same batches
        # sent from one thread).
        # (``generate_items`` sends from its caller's thread instead: ``caller_thread.served``.)
        self._own_sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coe-batch")
        self._sender: Any = self._own_sender

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "llm":  # not set yet (copy, pickle): no recursion into self.llm
            raise AttributeError(name)
        value = getattr(self.llm, name)
        if name == "score_options":  # only where the backend has it: callers test for the attribute
            return lambda request: self._sender.submit(value, request).result()
        return value

    # --- the callers ------------------------------------------------------------------------------------

    def set_callers(self, n: int | None) -> None:
        """How many threads are calling now (None: unknown). When all of them wait, the batch goes at
        once instead of after ``max_wait_ms``. A count too high only delays batches up to ``max_wait_ms``;
        one too low only makes them smaller."""
        with self._cond:
            self._callers = None if n is None else max(0, int(n))
            self._cond.notify_all()

    def send_through(self, sender: Any, *, replacing: Any = None) -> Any:
        """Send the batches through ``sender`` (``submit(fn, *args)`` returning a ``Future``) from now on, and
        return the sender it replaced. Only the batcher's own thread is replaced, or with ``replacing``
        only that sender; otherwise nothing changes and the answer is None."""
        with self._cond:
            if self._sender is not (self._own_sender if replacing is None else replacing):
                return None
            replaced, self._sender = self._sender, sender
            return replaced

    @property
    def stats(self) -> dict[str, Any]:
        """Batches sent so far: how many, their sizes in order, requests and seconds in the backend."""
        with self._cond:
            sizes = list(self._sizes)
            return {
                "batches": len(sizes),
                "requests": sum(sizes),
                "sizes": sizes,
                "max_size": max(sizes, default=0),
                "mean_size": round(sum(sizes) / len(sizes), 3) if sizes else 0.0,
                "seconds": round(self._seconds, 3),
            }

    # --- the plugin calls -------------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> Generation:
        return self._call([request])[0]

    def generate_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        return self._call(list(requests)) if requests else []

    def _call(self, requests: list[GenerationRequest]) -> list[Generation]:
        now = time.monotonic()
        owner = threading.get_ident()
        slots = [_Slot(r, owner, now) for r in requests]
        with self._cond:
            # No one is woken here: a batch this request fills or completes is sent by this thread below,
            # and a new request only moves the others' deadline later (they wake at the old one, look, and
            # wait again). Waking every waiting caller on each arrival cost O(callers²) wake-ups per step.
            self._pending.extend(slots)
        while True:
            with self._cond:
                while True:
                    if all(s.done for s in slots):
                        for s in slots:
                            if s.error is not None:
                                raise s.error
                        return [s.reply for s in slots]  # type: ignore[misc]
                    now = time.monotonic()
                    if self._ready(now):
                        batch = self._pending[: self.max_batch_size]
                        del self._pending[: self.max_batch_size]
                        self._busy = True
                        break
                    self._cond.wait(self._wait_seconds(now))
            self._send(batch)  # outside the lock: others keep queueing meanwhile

    def _deadline(self) -> float:
        first = max(self._pending[0].queued_at, self._free_since)
        last = max(self._pending[-1].queued_at, self._free_since)
        return min(last + self.max_wait_ms / 1000, first + self.max_hold_ms / 1000)

    def _ready(self, now: float) -> bool:
        if self._busy or not self._pending:
            return False
        if len(self._pending) >= self.max_batch_size or now >= self._deadline():
            return True
        return self._callers is not None and len({s.owner for s in self._pending}) >= self._callers

    def _wait_seconds(self, now: float) -> float | None:
        if self._busy or not self._pending:
            return None  # woken when the batch in flight comes back
        return max(0.0, self._deadline() - now)

    def _send(self, batch: list[_Slot]) -> None:
        t0 = time.perf_counter()
        try:
            replies = self._sender.submit(self.llm.generate_batch, [s.request for s in batch]).result()
            if len(replies) != len(batch):
                raise RuntimeError(f"generate_batch returned {len(replies)} replies for {len(batch)} requests")
            for slot, reply in zip(batch, replies):
                slot.reply = reply
        except BaseException as exc:  # every caller of this batch sees the failure
            for slot in batch:
                slot.error = exc
        finally:
            with self._cond:
                for slot in batch:
                    slot.done = True
                self._busy = False
                self._free_since = time.monotonic()
                self._sizes.append(len(batch))
                self._seconds += time.perf_counter() - t0
                self._cond.notify_all()
