"""Progress bars on a terminal; plain milestone lines in logs (CI, pipes), where a live bar shows nothing."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import Progress


class LineProgress:
    """The part of rich's Progress API coe uses, printing one line per 25 % step of each task."""

    def __init__(self, console: Console, disable: bool = False) -> None:
        self.console, self.disable = console, disable
        self._tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **_: Any) -> int:
        tid = len(self._tasks)
        self._tasks[tid] = {"description": description, "total": total, "completed": 0.0, "step": -1}
        self._report(tid)
        return tid

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, completed=self._tasks[task_id]["completed"] + advance)

    def update(self, task_id: int, *, completed: float | None = None, total: float | None = None,
               advance: float | None = None, description: str | None = None, **_: Any) -> None:
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
        total = t["total"] or 0
        step = int(4 * t["completed"] / total) if total else 0
        if self.disable or step <= t["step"]:
            return
        t["step"] = step
        shown = f"{t['completed']:.0f}/{total:.0f}" if total else f"{t['completed']:.0f}"
        self.console.print(f"{t['description']}: {shown}", highlight=False)


def make_progress(*columns: Any, console: Console, disable: bool = False):
    if console.is_terminal:
        return Progress(*columns, console=console, disable=disable)
    return LineProgress(console, disable=disable)
