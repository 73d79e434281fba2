"""Console runs without Streamlit: one review-graph thread per run, driven by a worker thread.

A :class:`Run` is one item being written and reviewed. Its graph state lives in the checkpointer
under ``thread_id = run_id``; each step (first generation, every review decision) is a
:class:`~coe.ui.jobs.Job` that the run streams through the graph in a background thread: it stops
between nodes when cancelled, and records the run in the local history when it ends.
Graph steps of all sessions share one lock, because they share one model instance.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from coe import history
from coe.agents.validation import normalize
from coe.errors import CoeError
from coe.text import one_line
from coe.ui.jobs import Job
from coe.ui.steps import summarize

log = logging.getLogger(__name__)

# Graph steps run one at a time across sessions: the model (llama.cpp, OCR) is one shared instance.
STEP_LOCK = threading.Lock()


def in_slots(slots: list[str | None], options: list[str]) -> list[int]:
    """The order of ``options`` that leaves each kept option (``slots[i]`` not None) in slot ``i`` and puts
    the new ones in the free slots, as indices into ``options``; unchanged when they do not line up."""
    keys = [normalize(o) for o in options]
    unchanged = list(range(len(options)))
    if len(slots) != len(options):
        return unchanged
    fixed: dict[int, int] = {}
    for i, kept in enumerate(slots):
        if kept is None:
            continue
        if normalize(kept) not in keys:
            return unchanged
        fixed[i] = keys.index(normalize(kept))
    rest = iter(j for j in unchanged if j not in fixed.values())
    return [fixed[i] if i in fixed else next(rest) for i in unchanged]


class Run:
    """One item: inputs, settings, its graph thread and its record in the history."""

    def __init__(
        self,
        graph,
        services,
        state: dict[str, Any],
        *,
        settings: dict[str, Any],
        variant: str,
        model: str | None,
        source: str = "ui",
        run_id: str | None = None,
    ) -> None:
        self.graph = graph
        self.services = services
        self.state = state
        self.settings = settings
        self.variant = variant
        self.model = model
        self.source = source
        self.run_id = run_id or history.new_run_id()
        self.created = history.now()
        self.round = 0
        self.job: Job | None = None
        self.status = "new"
        self.error: str | None = None
        self.config = {"configurable": {"thread_id": self.run_id, **settings}}
        self.notice: str | None = None
        self._final: dict[str, Any] | None = None

    @classmethod
    def reopen(cls, graph, services, record: dict[str, Any]) -> "Run":
        """A run from its history record, back on its review thread (kept by the graph's checkpointer)."""
        run_settings = {k: v for k, v in (record.get("settings") or {}).items() if k != "model"}
        run = cls(
            graph,
            services,
            dict(record.get("inputs") or {}),
            settings=run_settings,
            variant=record.get("variant") or "Full CoE",
            model=(record.get("settings") or {}).get("model"),
            source=record.get("source") or "ui",
            run_id=record["run_id"],
        )
        run.created = record.get("created") or run.created
        if run.review_request() is None:
            raise CoeError(f"run {run.run_id} is no longer waiting for review here (its thread is gone)")
        run.status, run.round = "review", 1
        return run

    # -- driving ------------------------------------------------------------------------

    def start(self) -> Job:
        return self._launch("generate", dict(self.state), "describe_image")

    def resume(self, decision: dict[str, Any], slots: list[str | None] | None = None) -> Job:
        """Apply a review decision; with ``slots`` (the kept options by slot, None where one is rewritten)
        the new options take the free slots and the kept ones stay where they were."""
        from langgraph.types import Command

        if self.job is not None and self.job.running:
            raise CoeError("the run is still busy")
        before = dict(self.snapshot().values or {})
        return self._launch(decision.get("action", "?"), Command(resume=decision), "review", before, slots)

    def cancel(self) -> None:
        """Stop after the step in progress (a model call cannot be cut short)."""
        if self.job is not None and self.job.running:
            self.job.cancel()

    @property
    def cancelling(self) -> bool:
        return self.job is not None and self.job.running and self.job.cancel_event.is_set()

    def _launch(
        self, kind: str, graph_input: Any, first: str, before: dict | None = None, slots: list[str | None] | None = None
    ) -> Job:
        job = Job(kind=kind, first_node=first, slots=slots)
        self.job, self.status, self.error, self.notice = job, "running", None, None
        job.thread = threading.Thread(
            target=self._work, args=(job, graph_input, before), daemon=True, name=f"coe-run-{self.run_id}"
        )
        job.thread.start()
        return job

    def _work(self, job: Job, graph_input: Any, before: dict | None) -> None:
        stream = self.graph.stream(graph_input, self.config, context=self.services, stream_mode="updates")
        status = "running"
        try:
            while True:
                if job.cancel_event.is_set():
                    status = "cancelled"
                    break
                with STEP_LOCK:
                    chunk = next(stream, None)
                if chunk is None:
                    break
                for node, update in chunk.items():
                    if node == "__interrupt__":
                        continue
                    job.add(summarize(node, update or {}), update or {})
            if status != "cancelled":
                status = "review" if self.snapshot().next else "accepted"
            if status == "review" and job.slots:
                with STEP_LOCK:
                    self._keep_slots(job.slots)
        except CoeError as exc:
            status, job.error = "error", one_line(exc)
        except Exception as exc:  # shown on the page as one line; details go to the server log
            log.exception("run %s failed", self.run_id)
            status, job.error = "error", f"{type(exc).__name__}: {one_line(exc)}"
        finally:
            stream.close()
            if status in ("cancelled", "error") and before is not None:
                # a review step that was cancelled or failed: back to the item as it was before it
                try:
                    self._restore(before, status)
                    self.notice = (
                        "Cancelled" if status == "cancelled" else "That step failed"
                    ) + ": the item is as it was before it."
                    status = "review"
                except Exception as exc:
                    log.exception("restoring run %s failed", self.run_id)
                    status, job.error = "error", f"{type(exc).__name__}: {one_line(exc)}"
            elif status == "cancelled":
                self.notice = "Cancelled."
            job.status = status
            self.status, self.error = status, job.error
            if status == "review":
                self.round += 1  # new review widgets, showing the new values
            try:
                self.record()
            except OSError:
                log.exception("recording run %s failed", self.run_id)
            if status in ("accepted", "cancelled", "error"):
                self.forget()
            job.finished = time.time()
            job.done.set()

    # -- reading ------------------------------------------------------------------------

    def _restore(self, before: dict[str, Any], why: str) -> None:
        """Put the item back as it was when the run last waited for review, and wait there again.

        The interrupted steps stay in the trace, followed by a ``review`` entry saying why."""
        keys = ("question", "answer", "distractors", "candidate_distractors", "attempts", "repaired", "review_problems")
        values: dict[str, Any] = {k: before[k] for k in keys if k in before}
        values.update(
            {
                "keep": before.get("keep", []),
                "rejected": before.get("rejected", []),
                "review_note": before.get("review_note", ""),
                "feedback": before.get("feedback", ""),
                "valid": True,
                "reviewed": False,
                "trace": [
                    {
                        "node": "review",
                        "action": why,
                        "seconds": 0.0,
                        "note": "the item is back as it was before the decision",
                    }
                ],
            }
        )
        self.graph.update_state(self.config, values, as_node="validate")
        for _ in self.graph.stream(None, self.config, context=self.services, stream_mode="updates"):
            pass  # runs only the review node, which interrupts again

    def _keep_slots(self, slots: list[str | None]) -> None:
        """Put the kept options back in their slots (the graph appends the new ones after them), with their
        notes, and wait for review again."""
        values = self.snapshot().values or {}
        options, notes = list(values.get("distractors") or []), list(values.get("distractor_notes") or [])
        order = in_slots(slots, options)
        if order == list(range(len(options))):
            return
        update: dict[str, Any] = {"distractors": [options[j] for j in order]}
        if len(notes) == len(options):
            update["distractor_notes"] = [notes[j] for j in order]
        self.graph.update_state(self.config, update, as_node="notes")
        for _ in self.graph.stream(None, self.config, context=self.services, stream_mode="updates"):
            pass  # runs only the review node, which interrupts again with the options in their slots

    def snapshot(self):
        return self.graph.get_state(self.config)

    def values(self) -> dict[str, Any]:
        if self._final is not None:
            return self._final
        return dict(self.snapshot().values or {})

    def review_request(self) -> dict[str, Any] | None:
        """The interrupt's payload while the run waits for a review decision."""
        for task in self.snapshot().tasks or ():
            for intr in task.interrupts or ():
                return dict(intr.value)
        return None

    def item(self) -> dict[str, Any]:
        v = self.values()
        exemplars = [
            {
                "id": e.get("id"),
                "score": e.get("score"),
                "question": e.get("question"),
                "answer": e.get("answer"),
                "distractors": e.get("distractors", []),
                "bank": e.get("bank", ""),
                "has_image": e.get("has_image", False),
                "signals": e.get("signals", {}),
            }
            for e in v.get("exemplars") or []
        ]
        model = v.get("model") or getattr(getattr(self.services, "llm", None), "model_id", "")
        return {
            "question": v.get("question"),
            "answer": v.get("answer"),
            "distractors": v.get("distractors") or [],
            "rationale": v.get("rationale"),
            "exemplars": exemplars,
            "model": model,
            "image": self.state.get("image_path"),
            "source": self.state.get("source"),
            "repaired": v.get("repaired") or [],
            "reviewed": bool(v.get("reviewed")),
            "status": v.get("status"),
            "reasons": v.get("reasons") or [],
            "difficulty": v.get("difficulty"),
            "verification": v.get("verification") or {},
            "distractor_notes": v.get("distractor_notes") or [],
            "variant": self.variant,
        }

    def trace(self) -> list[dict[str, Any]]:
        return list(self.values().get("trace") or [])

    def record_dict(self) -> dict[str, Any]:
        item = self.item()
        return {
            "run_id": self.run_id,
            "created": self.created,
            "source": self.source,
            "status": self.status,
            "variant": self.variant,
            "inputs": {k: v for k, v in self.state.items()},
            "settings": {"model": self.model, **self.settings},
            "item": item,
            "trace": self.trace(),
            **({"error": self.error} if self.error else {}),
        }

    def record(self) -> str:
        return history.save_run(self.record_dict())

    def forget(self) -> None:
        """Keep the final values, drop the thread from the checkpointer (it is over)."""
        try:
            self._final = dict(self.snapshot().values or {})
            saver = getattr(self.graph, "checkpointer", None)
            if saver is not None and hasattr(saver, "delete_thread"):
                saver.delete_thread(self.run_id)
        except Exception:
            log.exception("dropping thread %s failed", self.run_id)
