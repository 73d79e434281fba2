"""A test hook at every store write boundary: with ``COE_EXIT_AFTER_WRITE=N`` the process exits (as a
``kill -9`` would leave it: no cleanup, no flush of anything unwritten) right after its N-th store write,
so the tests can stop ingestion and bank imports at each boundary, not only at random moments."""

from __future__ import annotations

import os

EXIT_CODE = 86
_ENV = "COE_EXIT_AFTER_WRITE"
_count = 0


def wrote(what: str) -> None:
    """Call right after a write to a store (a file of its folder, its vectors) has completed."""
    global _count
    target = os.environ.get(_ENV)
    if not target:
        return
    _count += 1
    if _count == int(target):
        os.write(2, f"coe: test exit after write {_count} ({what})\n".encode())
        os._exit(EXIT_CODE)


class Watched:
    """``store`` with ``wrote`` called after each of its ``methods`` (the calls that write vectors)."""

    def __init__(self, store, methods: tuple[str, ...], what: str) -> None:
        self._store, self._methods, self._what = store, methods, what

    def __getattr__(self, name: str):
        attr = getattr(self._store, name)
        if name not in self._methods or not callable(attr):
            return attr

        def call(*args, **kwargs):
            out = attr(*args, **kwargs)
            wrote(f"{self._what}.{name}")
            return out

        return call
