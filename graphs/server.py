"""The graph a LangGraph server serves (``langgraph dev``, LangGraph Platform; see ``langgraph.json``).

A server run carries no Python objects, so the models are resolved once, when the server loads this
module, by ``load_services`` (``COE_SERVICES``, else the CPU default for ``COE_MODEL``). The run's context is
the graph's settings (``GraphSettings``: ``n_distractors``, ``difficulty``, ``seed``, ...), which LangGraph
Studio renders as a form; every node sees them as ``config["configurable"]``, as in a local run, and the
loaded models as its runtime context."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from .build import build_graph
from .services import Services, load_services
from .settings import GraphSettings


def with_services(services: Services) -> Callable:
    """A ``build_graph`` wrapper: each node gets ``services`` as its context and the run's settings context
    in its configurable (values set in the config win)."""

    def wrap(name: str, fn: Callable[..., dict[str, Any]]):
        takes_runtime = "runtime" in inspect.signature(fn).parameters

        def node(state, config: RunnableConfig, runtime: Runtime[GraphSettings]) -> dict[str, Any]:
            chosen = (runtime.context.model_dump(exclude_unset=True)
                      if isinstance(runtime.context, GraphSettings) else {})
            config = {**config, "configurable": {**chosen, **(config.get("configurable") or {})}}
            return fn(state, config, runtime.override(context=services)) if takes_runtime else fn(state, config)

        node.__name__ = name
        return node

    return wrap


def make_graph(services: Services):
    return build_graph(wrap=with_services(services), context_schema=GraphSettings, name="coe")


graph = make_graph(load_services())
