"""One writer at a time per store (a bank's folder, a material's folder), across processes: the CLI, the
console and batch runs all write through the functions that take this lock, so two of them never
read-modify-write the same records at once."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from coe.errors import InputError

DEFAULT_TIMEOUT_S = 600.0


def _timeout() -> float:
    try:
        return max(0.0, float(os.environ.get("COE_LOCK_TIMEOUT", DEFAULT_TIMEOUT_S)))
    except ValueError:
        return DEFAULT_TIMEOUT_S


@contextmanager
def writer_lock(folder: Path, what: str) -> Iterator[None]:
    """Hold ``folder``'s writer lock; a second writer says it waits, then fails with one line after
    ``COE_LOCK_TIMEOUT`` seconds. The lock file sits beside the folder, so removing the folder keeps it."""
    from filelock import FileLock, Timeout

    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder.parent / f".{folder.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        limit = _timeout()
        print(f"coe: waiting for another process writing {what} (up to {limit:.0f} s)", file=sys.stderr, flush=True)
        try:
            lock.acquire(timeout=limit)
        except Timeout:
            raise InputError(
                f"{what} is being written by another process; try again when it is done "
                f"(waited {limit:.0f} s, COE_LOCK_TIMEOUT)"
            ) from None
    try:
        yield
    finally:
        lock.release()
