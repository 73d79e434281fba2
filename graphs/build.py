"""Wiring: describe_image → retrieve → question → rationale → distractors → validate (↺ distractors)."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from . import nodes
from .state import CoEState


STEPS = ("describe_image", "retrieve", "question", "rationale", "distractors", "validate")


def add_steps(g: StateGraph, functions: dict | None = None, wrap=lambda name, fn: fn) -> StateGraph:
    """Add the CoE steps in order, START → … → validate; ``functions`` overrides some of ``nodes``'
    functions and ``wrap`` decorates each. The caller adds the edges out of ``validate``."""
    functions = functions or {}
    for name in STEPS:
        g.add_node(name, wrap(name, functions.get(name, getattr(nodes, name))))
    g.add_edge(START, STEPS[0])
    for a, b in zip(STEPS, STEPS[1:]):
        g.add_edge(a, b)
    return g


def build_graph(checkpointer=None):
    g = add_steps(StateGraph(CoEState))
    g.add_conditional_edges("validate", nodes.after_validate, {"done": END, "retry": "distractors"})
    return g.compile(checkpointer=checkpointer, name="coe")


graph = build_graph()
