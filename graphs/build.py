"""Wiring, defined once:

describe_image → retrieve → question → rationale → distractors → validate (↺ distractors) → verify →
notes, where verify's decision may send the item back to question or to distractors (bounded rounds).

``build_graph(until=STEP)`` compiles the same nodes and edges, ending after STEP: the evaluation of one
task (QG ends after ``question``, RG after ``rationale``) runs this graph, not a copy of its steps.
``build_graph(review=NODE)`` appends a human review node (see ``review.py``) in place of the end. Every step
runs in one wrapper (``tracing.traced``): timing, trace entries, and the models of a served run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.graph import END, START, StateGraph

from . import check_nodes, nodes
from .services import Services
from .tracing import traced
from .state import CoEInput, CoEOutput, CoEState

WRITING_STEPS = ("describe_image", "retrieve", "question", "rationale", "distractors")
CHECKING_STEPS = ("validate", "verify", "notes")
STEPS = WRITING_STEPS + CHECKING_STEPS
_NODES = {
    **{step: getattr(nodes, step) for step in WRITING_STEPS},
    **{step: getattr(check_nodes, step) for step in CHECKING_STEPS},
}
_LINEAR = (
    ("describe_image", "retrieve"),
    ("retrieve", "question"),
    ("question", "rationale"),
    ("rationale", "distractors"),
    ("distractors", "validate"),
    ("notes", END),
)


def build_graph(
    checkpointer=None,
    *,
    until: str | None = None,
    functions: dict | None = None,
    name: str = "coe",
    state_schema=CoEState,
    context_schema: Any = Services,
    review: Callable | None = None,
    record_inputs: bool = False,
    services: Callable[[], Services] | None = None,
):
    """``functions`` overrides some node functions; ``record_inputs``: each trace entry lists the state fields
    its node read (the console shows them); ``services``: the models of a run whose context brings none, and
    ``context_schema`` what such a run's context is instead (the LangGraph server's settings form)."""
    if until is not None and until not in STEPS:
        raise ValueError(f"unknown step {until!r}; steps: {', '.join(STEPS)}")
    steps = STEPS[: STEPS.index(until) + 1] if until else STEPS
    functions = functions or {}
    # The review graph's callers read its whole state (review fields included), so it keeps the state schema.
    g = (
        StateGraph(state_schema, context_schema=context_schema, input_schema=CoEInput, output_schema=CoEOutput)
        if review is None
        else StateGraph(state_schema, context_schema=context_schema)
    )
    for step in steps:
        g.add_node(
            step,
            traced(
                step,
                functions.get(step, _NODES[step]),
                first=step == steps[0],
                services=services,
                record_inputs=record_inputs,
            ),
        )
    end = END
    if review is not None:
        g.add_node("review", review, destinations=("rationale", "distractors", "review", END))
        end = "review"
    nxt = {a: b for a, b in _LINEAR}
    g.add_edge(START, steps[0])
    for step in steps:
        if step in ("validate", "verify"):
            continue  # conditional below
        g.add_edge(step, nxt[step] if nxt.get(step) in steps else end)
    if "validate" in steps:
        g.add_conditional_edges(
            "validate",
            check_nodes.after_validate,
            {
                "done": "verify" if "verify" in steps else end,
                "retry": "distractors",
                "kept": "notes" if "notes" in steps else end,
            },
        )
    if "verify" in steps:
        g.add_conditional_edges(
            "verify",
            check_nodes.after_verify,
            {"done": "notes" if "notes" in steps else end, "question": "question", "distractors": "distractors"},
        )
    return g.compile(checkpointer=checkpointer, name=name if until is None else f"{name}-{until}")


graph = build_graph()
