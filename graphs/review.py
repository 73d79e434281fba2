"""The CoE graph with a human review step: interrupt after validation, resume with a decision.

``build_review_graph(checkpointer)`` runs the same nodes as :func:`coe.graphs.build_graph` and then
stops in ``review`` with ``interrupt()``, handing the item to the caller. The caller resumes the same
thread with one of::

    Command(resume={"action": "accept", "edits": {"question": ..., "answer": ..., "distractors": [...],
                                                  "rationale": ..., "distractor_notes": [...]}})
    Command(resume={"action": "regenerate_distractors", "keep": ["kept option", ...],
                    "edits": {"question": ..., "answer": ...}})
    Command(resume={"action": "swap_question", "question": "one of the interrupt's questions (or any)"})

``accept`` validates the (edited) item and ends, or interrupts again listing the problems.
``regenerate_distractors`` goes back to the distractor node, which writes only the options that are
not kept (the kept ones are fixed; an option the reviewer replaced counts as invalid if it comes back),
re-validates with the usual retries and repair, and interrupts again. ``swap_question`` puts another question
in (the interrupt's ``questions`` are the other templates the question step kept, e.g. the secondary consumer
beside the primary one) and runs the rest again for it, rationale, distractors and verification included; the
swapped question counts as given, so verification flags what does not fit it rather than replace it. A
checkpointer and a ``thread_id`` are required.
"""

from __future__ import annotations

import time
from typing import Any

from coe.agents.validation import clean_option, normalize, validate_distractors
from coe.ranking.templates import template_mask
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from . import nodes
from .build import build_graph
from .services import Services
from .settings import settings_from
from .state import CoEState
from coe.text import one_line

ACTIONS = ("accept", "regenerate_distractors", "swap_question")
SWAPS = 3  # other question templates offered to the reviewer


class ReviewState(CoEState, total=False):
    keep: list[str]  # distractors the reviewer keeps while the others are rewritten
    rejected: list[str]  # distractors the reviewer replaced: they may not come back (as ``rejected_by``)
    review_note: str  # what the reviewer rejected, passed to the distractor prompt
    review_problems: list[str]  # why the last review decision was refused
    reviewed: bool  # accepted by the reviewer


def distractors_keeping(state: ReviewState, config: RunnableConfig, runtime: Runtime[Services]) -> dict[str, Any]:
    """The distractor node, writing only the options the reviewer did not keep."""
    keep = list(state.get("keep") or [])
    note = state.get("review_note") or ""
    if not keep and not note:
        return nodes.distractors(state, config, runtime)
    n = state.get("n_distractors") or settings_from(config).n_distractors
    feedback = "; ".join(part for part in (note, state.get("feedback", "")) if part)
    if len(keep) >= n:
        attempt = state.get("attempts", 0) + 1
        return {
            "candidate_distractors": keep[:n],
            "attempts": attempt,
            "trace": [{"attempt": attempt, "kept": keep, "skipped": "every distractor kept"}],
        }
    view = state | {"n_distractors": n - len(keep), "feedback": feedback}
    update = nodes.distractors(view, config, runtime)
    update["candidate_distractors"] = keep + list(update.get("candidate_distractors") or [])
    update["trace"] = [{**entry, "kept": keep} for entry in update.get("trace", [])]
    return update


def _text(value: Any) -> str:
    return one_line(value) if value is not None else ""


def other_questions(state: ReviewState) -> list[str]:
    """The other question templates the question step kept for this item (its ranked candidates), best first,
    one per template and none of the current question's."""
    entries = [e for e in state.get("trace") or [] if e.get("node") == "question" and e.get("candidates")]
    if not entries:
        return []
    answer = state.get("answer") or ""
    seen = {template_mask(state.get("question") or "", answer)}
    out = []
    for c in entries[-1]["candidates"]:
        text = _text(c.get("text") if isinstance(c, dict) else None)
        mask = template_mask(text, answer)
        if text and mask not in seen:
            seen.add(mask)
            out.append(text)
    return out[:SWAPS]


def _written_again() -> dict[str, Any]:
    """What a decision that has the options written again starts from: no attempts, no candidates, not yet
    valid, repaired or reviewed (fresh lists each time: the update becomes the thread's state)."""
    return {
        "feedback": "",
        "attempts": 0,
        "candidate_distractors": [],
        "valid": False,
        "repaired": [],
        "reviewed": False,
        "review_problems": [],
    }


def _swap(state: ReviewState, question: str, answer: str, entry: dict[str, Any]) -> Command:
    """Everything after the question again, for the reviewer's question; what was rejected for the old
    question may fit the new one."""
    return Command(
        goto="rationale",
        update={
            "question": question,
            "question_given": question,
            "answer": answer,
            "keep": [],
            "rejected": [],
            "rejected_by": {},
            "rejected_options": [],
            "review_note": "",
            "distractor_rounds": 0,
            **_written_again(),
            "trace": [entry],
        },
    )


def review(state: ReviewState, config: RunnableConfig) -> Command:
    """Hand the item to a person; apply their decision when the thread is resumed."""
    decision = interrupt(
        {
            "question": state.get("question"),
            "answer": state.get("answer"),
            "distractors": state.get("distractors", []),
            "rationale": state.get("rationale"),
            "repaired": state.get("repaired", []),
            "problems": state.get("review_problems", []),
            "status": state.get("status"),
            "reasons": state.get("reasons", []),
            "verification": state.get("verification", {}),
            "distractor_notes": state.get("distractor_notes", []),
            "difficulty": state.get("difficulty"),
            "questions": other_questions(state),
            "actions": list(ACTIONS),
        }
    )
    t0 = time.perf_counter()
    decision = decision if isinstance(decision, dict) else {"action": decision}
    action = decision.get("action")
    edits = dict(decision.get("edits") or {})
    n = state.get("n_distractors") or settings_from(config).n_distractors
    question = _text(edits.get("question", state.get("question")))
    if action == "swap_question":
        question = _text(decision.get("question"))
    answer = _text(edits.get("answer", state.get("answer")))
    entry: dict[str, Any] = {"node": "review", "action": action, "edits": edits}
    problems: list[str] = []
    if not question:
        problems.append("the question is empty")
    if not answer:
        problems.append("the answer is empty")
    if action not in ACTIONS:
        problems.append(f"unknown review action {action!r} (use one of {', '.join(ACTIONS)})")

    if not problems and action == "swap_question":
        entry.update(
            {"question": question, "valid": True, "problems": [], "seconds": round(time.perf_counter() - t0, 3)}
        )
        return _swap(state, question, answer, entry)
    if not problems and action == "accept":
        verdict = validate_distractors(list(edits.get("distractors", state.get("distractors", []))), answer, n)
        entry.update(
            {"valid": verdict.valid, "problems": verdict.problems, "seconds": round(time.perf_counter() - t0, 3)}
        )
        if verdict.valid:
            texts: dict[str, Any] = {k: _text(edits[k]) for k in ("rationale",) if k in edits}
            if "distractor_notes" in edits:  # one note per kept distractor, in its slot
                texts["distractor_notes"] = [_text(x) for x in list(edits["distractor_notes"])[: len(verdict.kept)]]
            return Command(
                goto=END,
                update={
                    "question": question,
                    "answer": answer,
                    "distractors": verdict.kept,
                    "valid": True,
                    "reviewed": True,
                    "review_problems": [],
                    "trace": [entry],
                    **texts,
                },
            )
        problems = verdict.problems
    elif not problems:
        keep = [clean_option(k) for k in decision.get("keep") or [] if _text(k)]
        checked = validate_distractors(keep, answer, len(keep))
        if not checked.valid:
            problems = [f"kept options: {p}" for p in checked.problems]
        elif len(keep) >= n:
            problems = [f"all {n} distractors are kept: nothing to regenerate"]
        else:
            kept = {normalize(k) for k in keep}
            rejected = [d for d in state.get("distractors", []) if normalize(d) not in kept]
            # every option replaced so far in this thread, unless the reviewer now keeps it
            seen = {normalize(d) for d in rejected}
            earlier = [d for d in state.get("rejected") or [] if normalize(d) not in kept and normalize(d) not in seen]
            rejected = [*earlier, *rejected]
            parts = []
            if rejected:
                parts.append("the reviewer rejected " + ", ".join(repr(d) for d in rejected))
            if keep:
                parts.append("the item already has " + ", ".join(repr(k) for k in keep) + " (do not repeat them)")
            note = "; ".join(parts) or "the reviewer asked for new distractors"
            entry.update(
                {
                    "keep": keep,
                    "rejected": rejected,
                    "valid": True,
                    "problems": [],
                    "seconds": round(time.perf_counter() - t0, 3),
                }
            )
            return Command(
                goto="distractors",
                update={
                    "question": question,
                    "answer": answer,
                    "keep": keep,
                    "rejected": rejected,
                    "rejected_by": {d: "the reviewer" for d in rejected},
                    "review_note": note,
                    **_written_again(),
                    "trace": [entry],
                },
            )
    entry.update({"valid": False, "problems": problems, "seconds": round(time.perf_counter() - t0, 3)})
    return Command(goto="review", update={"review_problems": problems, "trace": [entry]})


def build_review_graph(checkpointer=None):
    """The CoE flow followed by an interrupting ``review`` node; needs a checkpointer to resume.

    Without one an in-memory checkpointer is used (state lives as long as the compiled graph)."""
    if checkpointer is None:
        from langgraph.checkpoint.memory import InMemorySaver

        checkpointer = InMemorySaver()
    return build_graph(
        checkpointer,
        functions={"distractors": distractors_keeping},
        record_inputs=True,
        name="coe-review",
        state_schema=ReviewState,
        review=review,
    )
