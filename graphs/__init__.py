"""The CoE LangGraph: ``from coe.graphs import graph`` gives a compiled Runnable."""

from .many_items import generate_items
from .build import build_graph, graph
from .services import Services
from .settings import GraphSettings

__all__ = ["build_graph", "generate_items", "graph", "GraphSettings", "Services"]
