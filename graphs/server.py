"""The graph a LangGraph server serves (``langgraph dev``, LangGraph Platform; see ``langgraph.json``).

A served run carries no Python objects, so its models are ``load_services()`` (``COE_SERVICES``, else the CPU
default for ``COE_MODEL``), loaded on the first run, not when the server imports this module. Its context is
the graph's settings (``GraphSettings``), which LangGraph Studio renders as a form and LangGraph validates;
the wrapper every node runs in (``tracing.traced``) moves them into ``config["configurable"]``, where the nodes
read settings in every run, and hands the node the models, so the nodes here are the same as everywhere."""

from __future__ import annotations

from functools import cache

from .build import build_graph
from .services import Services, load_services
from .settings import GraphSettings


@cache
def served_services() -> Services:
    return load_services()


graph = build_graph(name="coe", context_schema=GraphSettings, services=served_services)
