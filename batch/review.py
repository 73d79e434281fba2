"""Reviewing a batch item: new distractors for a written item, through the review graph.

The item re-enters the same review graph the console's single items use (``coe.graphs.review``), as if
its ``notes`` step had just ended; resuming with ``regenerate_distractors`` then writes only the options
not kept (kept ones stay in their slots), validates and verifies them as usual.
"""

from __future__ import annotations

import uuid
from typing import Any

from coe.errors import InputError

from .ledger import Ledger

# the written item's fields the distractor, validation, verification and notes steps read again
_CARRIED = (
    "question",
    "rationale",
    "distractors",
    "distractor_notes",
    "exemplars",
    "status",
    "reasons",
    "verification",
    "difficulty",
    "model",
)


def regenerate(ledger: Ledger, row_id: str, keep: list[str], services: Any) -> dict[str, Any]:
    """Replace the distractors of ``row_id`` not in ``keep``; stores and returns the new item."""
    from langgraph.types import Command

    from coe.generate import mcq_from_output
    from coe.graphs.review import build_review_graph

    entry = ledger.entry(row_id)
    if entry is None or entry["state"] != "done":
        raise InputError(f"no written item {row_id!r} in the run {ledger.run_dir}")
    item, settings = entry["item"], dict(ledger.meta().get("settings") or {})
    settings.pop("model", None)
    settings.pop("banks", None)
    graph = build_review_graph()
    config = {"configurable": {"thread_id": str(uuid.uuid4()), **settings}}
    graph.update_state(config, {**entry["input"], **{k: item[k] for k in _CARRIED if k in item}}, as_node="notes")
    graph.invoke(None, config, context=services)  # on to the review step, which waits for a decision
    graph.invoke(Command(resume={"action": "regenerate_distractors", "keep": list(keep)}), config, context=services)
    state = graph.get_state(config)
    values = state.values
    problems = values.get("review_problems") or []
    if problems:
        raise InputError("cannot regenerate: " + "; ".join(problems))
    k = sum(1 for e in item.get("exemplars", []) if e.get("in_prompt"))
    exemplars = [{**e, "signals": e.get("signals", {})} for e in item.get("exemplars", [])]
    new = mcq_from_output(
        {**values, "exemplars": exemplars, "trace": [*item.get("trace", []), *values["trace"]]},
        k=k,
        image=item.get("image"),
        model=item.get("model") or "",
    )
    record = new.model_dump(mode="json")
    ledger.replace_item(row_id, record)
    return record
