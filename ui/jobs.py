"""One step of a console run (:class:`Job`): the graph streamed from its input (or a resume command) to the
next interrupt or the end, the node updates it collected for the page, and its progress and cancellation."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from coe.ui.steps import expected_next, progress, record_step_time


@dataclass
class Job:
    """One stream of the graph: from the input (or a resume command) to the next interrupt or the end."""

    kind: str  # "generate" or the review action
    first_node: str
    updates: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"  # running | review | accepted | cancelled | error
    error: str | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    thread: threading.Thread | None = None
    slots: list[str | None] | None = None  # a single regeneration: the kept options by slot

    def add(self, summary: dict[str, Any], update: dict[str, Any]) -> None:
        now = time.time()
        wall = now - (self.updates[-1]["at"] if self.updates else self.started)
        record_step_time(summary["node"], wall)
        self.updates.append({**summary, "wall": round(wall, 3), "at": now, "_update": update})

    @property
    def running(self) -> bool:
        return not self.done.is_set()

    def cancel(self) -> None:
        self.cancel_event.set()

    def next_node(self) -> str:
        if not self.updates:
            return self.first_node
        last = self.updates[-1]
        return expected_next(last["node"], last.get("_update"))

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def progress(self) -> tuple[int, int, str]:
        """(step k, of n, a line in plain words with the time left) for the step in progress."""
        since = time.time() - (self.updates[-1]["at"] if self.updates else self.started)
        return progress(self.kind, self.updates, self.next_node(), since)
