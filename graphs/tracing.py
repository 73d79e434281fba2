"""The one wrapper every node of ``build_graph`` runs in: it times the node, completes its trace entries
(``TraceEntry``), gives it its models, and on request records the state fields it read.

Where the settings live: the nodes read them from ``config["configurable"]`` (``settings_from``) and their
models from LangGraph's runtime context (``Services``). The models are the caller's live Python objects,
which is what the runtime context is for and what neither a checkpoint nor a server request can carry; the
settings are plain JSON values that belong with the run's config: a review thread is resumed with the same
config, and LangGraph's server copies a run's JSON context into ``configurable`` too. A served run
(``server.py``) has no models in its context but its settings; this wrapper moves those into the configurable
and gives the node the models, so the nodes read both the same way in every run."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from pydantic import BaseModel

from .services import Services
from .settings import resolve_selection, settings_from
from .state import TraceEntry


class Reads(dict):
    """The state as a node sees it, noting each field the node reads; ``state | {...}`` keeps noting."""

    def __init__(self, data: Mapping[str, Any], read: set[str] | None = None) -> None:
        super().__init__(data)
        self.read: set[str] = set() if read is None else read

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)

    def __or__(self, other: Mapping[str, Any]) -> Reads:  # type: ignore[override]
        return Reads({**self, **other}, self.read)


def read_fields(state: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The fields a node read, as its trace entry shows them (exemplars by id)."""
    return {
        k: [e.get("id") for e in state[k] or []] if k == "exemplars" else state[k]
        for k in sorted(keys)
        if k in state and k != "trace"
    }


def traced(
    name: str,
    fn: Callable[..., dict[str, Any]],
    *,
    first: bool = False,
    services: Callable[[], Services] | None = None,
    record_inputs: bool = False,
):
    """``fn`` as graph node ``name``. ``first``: its entry records the run's resolved settings. ``services``:
    the models when the run's context brings none (a served run, whose context is its settings)."""
    takes_runtime = "runtime" in inspect.signature(fn).parameters

    def node(state: dict[str, Any], config: RunnableConfig, runtime: Runtime[Services]) -> Any:
        if services is not None and not isinstance(runtime.context, Services):
            # a served run: its context is its settings, which join the configurable (values there win)
            chosen = runtime.context.model_dump(exclude_unset=True) if isinstance(runtime.context, BaseModel) else {}
            config = {**config, "configurable": {**chosen, **(config.get("configurable") or {})}}
            runtime = runtime.override(context=services())
        reads = Reads(state) if record_inputs else None
        seen = reads if reads is not None else state
        t0 = time.perf_counter()
        update = fn(seen, config, runtime) if takes_runtime else fn(seen, config)
        seconds = round(time.perf_counter() - t0, 3)
        target = update.update if hasattr(update, "goto") else update  # a Command carries its update
        if not isinstance(target, dict) or "trace" not in target:
            return update
        entries: list[TraceEntry] = [{"node": name, **entry, "seconds": seconds} for entry in target["trace"]]
        if reads is not None:
            entries = [{**entry, "inputs": read_fields(state, reads.read)} for entry in entries]
        if first and entries:
            resolved, _ = resolve_selection(settings_from(config), getattr(runtime.context, "llm", None))
            entries[0]["settings"] = resolved.model_dump(mode="json")
        target["trace"] = entries
        return update

    node.__name__ = name
    return node
