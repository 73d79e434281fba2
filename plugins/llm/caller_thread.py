"""Batches sent from the caller's own thread.

On a CPU, PyTorch runs a call's kernels on an OpenMP thread team that belongs to the calling thread, and GNU
OpenMP stops spin-waiting between kernels once the process holds more OpenMP threads than there are cores.
The thread that loaded the model already has a team; batches sent from a second thread add another, and
from then on every kernel waits for a sleeping thread to wake up. Measured on 2 cores: the same PyTorch
work took 134-179 ms on the main thread alone and 220-289 ms once a second thread had run PyTorch; the
quick Qwen2-VL bench reached 0.79x the stage-by-stage batches with a sender thread and 0.92-0.96x with the
batches sent from the caller's thread, in one run.

``served(batcher, run)`` therefore runs the items (``run``) on a helper thread while the calling thread
sends the micro-batcher's batches, and hands back what the items put out as they finish.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from .request_batcher import MicroBatchLLM

_END = object()


class _Out:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _chain(outer: Future, inner: Future) -> None:
    def done(f: Future) -> None:
        exc = f.exception()
        if exc is not None:
            outer.set_exception(exc)
        else:
            outer.set_result(f.result())

    inner.add_done_callback(done)


class CallerThreadSender:
    """A sender (``submit`` returns a ``Future``) whose calls run on the thread that iterates ``serve``, until
    ``hand_over`` passes the waiting and later calls to another sender."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._instead: Any = None

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        with self._lock:
            if self._instead is not None:
                return self._instead.submit(fn, *args)
            future: Future = Future()
            self._queue.put((future, fn, args))
            return future

    def put(self, value: Any) -> None:
        """Something for ``serve`` to yield."""
        self._queue.put(_Out(value))

    def close(self) -> None:
        self._queue.put(_END)

    def serve(self) -> Iterator[Any]:
        """Run the calls as they arrive and yield what ``put`` was given, until ``close``."""
        while (entry := self._queue.get()) is not _END:
            if isinstance(entry, _Out):
                yield entry.value
                continue
            future, fn, args = entry
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # the callers waiting on this batch get it
                future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise  # Ctrl-C (or exit) also stops this thread's own caller

    def hand_over(self, sender: Any) -> None:
        with self._lock:
            self._instead = sender
            waiting = []
            while True:
                try:
                    waiting.append(self._queue.get_nowait())
                except queue.Empty:
                    break
        for entry in waiting:
            if isinstance(entry, tuple):
                future, fn, args = entry
                _chain(future, sender.submit(fn, *args))


def served(batcher: MicroBatchLLM, run: Callable[[Callable[[Any], None]], None]) -> Iterator[Any]:
    """``run(put)`` on a helper thread (with this thread's context variables) while this thread sends
    ``batcher``'s batches; yields what ``run`` puts, then raises what ``run`` raised. When another caller
    already sends this batcher's batches from its thread, that goes on and this thread only collects. If
    the iteration stops early, the batches still to come go out from the batcher's own sender thread."""
    sender = CallerThreadSender()
    previous = batcher.send_through(sender)
    failed: list[BaseException] = []

    def body() -> None:
        try:
            run(sender.put)
        except BaseException as exc:  # handed to the caller below
            failed.append(exc)
        finally:
            sender.close()

    context = contextvars.copy_context()
    helper = threading.Thread(target=lambda: context.run(body), name="coe-items", daemon=True)
    helper.start()
    try:
        yield from sender.serve()
    finally:
        if previous is not None:
            batcher.send_through(previous, replacing=sender)
            sender.hand_over(previous)
    helper.join()
    if failed:
        raise failed[0]
