"""Wiring: describe_image → retrieve → question → rationale → distractors → validate (↺ distractors)."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from . import nodes
from .state import CoEState


def build_graph(checkpointer=None):
    g = StateGraph(CoEState)
    g.add_node("describe_image", nodes.describe_image)
    g.add_node("retrieve", nodes.retrieve)
    g.add_node("question", nodes.question)
    g.add_node("rationale", nodes.rationale)
    g.add_node("distractors", nodes.distractors)
    g.add_node("validate", nodes.validate)
    g.add_edge(START, "describe_image")
    g.add_edge("describe_image", "retrieve")
    g.add_edge("retrieve", "question")
    g.add_edge("question", "rationale")
    g.add_edge("rationale", "distractors")
    g.add_edge("distractors", "validate")
    g.add_conditional_edges("validate", nodes.after_validate, {"done": END, "retry": "distractors"})
    return g.compile(checkpointer=checkpointer, name="coe")


graph = build_graph()
