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


def resolve_llm(model: str | None = None) -> Any:
    """The LLM plugin for a ``--model`` spec, resolved through the ``coe.llm`` entry-point group:

    * ``NAME:SPEC`` where NAME is a registered plugin (``llamacpp``, ``openai``, ``transformers``,
      ``qwen-vl-chat`` or a third party's): the plugin's ``from_spec(SPEC)``, or the plugin called with SPEC;
    * anything else (a preset name, a ``.gguf`` path, a hub id, or nothing): llama.cpp in process."""
    from coe.settings import settings

    model = model or settings().model
    name, sep, spec = (model or "").partition(":")
    if sep and name in available("llm"):
        plugin = load("llm", name)
        build = getattr(plugin, "from_spec", None)
        return build(spec) if build is not None else plugin(spec)
    return load("llm", "llamacpp").from_spec(model or "")
