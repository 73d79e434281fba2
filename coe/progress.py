"""Progress bars on a terminal; plain lines in logs (CI, pipes, ``> file``), where a live bar shows nothing."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import Progress

EVERY_S = 10.0  # a log line at least this often while a task advances


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class LineProgress:
    """The part of rich's Progress API coe uses, printing a line with the count, elapsed time and ETA when a task
    starts, reaches each 25 % step, finishes, or has advanced and ``every_s`` seconds passed since its last line."""

    def __init__(self, console: Console, disable: bool = False, every_s: float = EVERY_S) -> None:
        self.console, self.disable, self.every_s = console, disable, every_s
        self._tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **_: Any) -> int:
        tid = len(self._tasks)
        now = time.monotonic()
        self._tasks[tid] = {
            "description": description,
            "total": total,
            "completed": 0.0,
            "step": -1,
            "start": now,
            "printed_at": now,
            "printed": None,
        }
        self._report(tid)
        return tid

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, completed=self._tasks[task_id]["completed"] + advance)

    def update(
        self,
        task_id: int,
        *,
        completed: float | None = None,
        total: float | None = None,
        advance: float | None = None,
        description: str | None = None,
        **_: Any,
    ) -> None:
        t = self._tasks[task_id]
        if total is not None:
            t["total"] = total
        if description is not None:
            t["description"] = description
        if advance is not None:
            t["completed"] += advance
        if completed is not None:
            t["completed"] = completed
        self._report(task_id)

    def _report(self, task_id: int) -> None:
        t = self._tasks[task_id]
        if self.disable or t["completed"] == t["printed"]:
            return
        total, done, now = t["total"] or 0, t["completed"], time.monotonic()
        step = int(4 * done / total) if total else 0
        if step <= t["step"] and now - t["printed_at"] < self.every_s:
            return
        t.update(step=max(step, t["step"]), printed_at=now, printed=done)
        elapsed = now - t["start"]
        if not total:
            self.console.print(f"{t['description']}: {done:.0f} ({_clock(elapsed)} elapsed)", highlight=False)
            return
        eta = f", ETA {_clock(elapsed / done * (total - done))}" if 0 < done < total else ""
        self.console.print(
            f"{t['description']}: {done:.0f}/{total:.0f} ({100 * done / total:.0f} %), {_clock(elapsed)} elapsed{eta}",
            highlight=False,
        )


def make_progress(*columns: Any, console: Console, disable: bool = False, every_s: float = EVERY_S):
    if console.is_terminal:
        return Progress(*columns, console=console, disable=disable)
    return LineProgress(console, disable=disable, every_s=every_s)


@contextmanager
def field_progress(console: Console):
    """A bar per field for index builds (``progress(field, done, total)``, the callback ``build_index``
    takes), as a context manager yielding that callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    with make_progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(field: str, done: int, total: int) -> None:
            if field not in tasks:
                tasks[field] = bar.add_task(f"embedding {field}", total=total)
            bar.update(tasks[field], completed=done, total=total)

        yield progress
