"""Plugins are found through entry points, so third-party packages can add backends without touching coe."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from coe.errors import ConfigError

GROUPS = {
    "llm": "coe.llm",
    "text_embedder": "coe.text_embedders",
    "image_embedder": "coe.image_embedders",
    "image_reader": "coe.image_readers",
    "vector_store": "coe.vector_stores",
}


def available(kind: str) -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUPS[kind]))


def load(kind: str, name: str) -> Any:
    """Return the plugin class (or factory) registered under ``name`` for ``kind``."""
    if kind not in GROUPS:
        raise ConfigError(f"unknown plugin kind {kind!r}; kinds: {', '.join(GROUPS)}")
    for ep in entry_points(group=GROUPS[kind]):
        if ep.name == name:
            try:
                return ep.load()
            except ImportError as exc:  # an optional dependency group that is not installed
                raise ConfigError(f"the {kind} plugin {name!r} cannot be loaded: {exc}") from exc
    raise ConfigError(f"no {kind} plugin named {name!r}; installed: {', '.join(available(kind)) or 'none'}")


def create(kind: str, name: str, **kwargs: Any) -> Any:
    return load(kind, name)(**kwargs)
