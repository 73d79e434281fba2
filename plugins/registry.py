"""Plugins are found through entry points, so third-party packages can add backends without touching coe.

Each kind is chosen by name: ``--model`` (``resolve_llm``) for the LLM, ``COE_TEXT_EMBEDDER``,
``COE_VECTOR_STORE``, ``COE_IMAGE_READER`` and ``COE_IMAGE_EMBEDDER`` for the others (``resolve``); unset,
the built-in plugin of the kind (``DEFAULTS``; no image embedder)."""

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


# The built-in plugin of each kind that has one by default.
DEFAULTS = {"text_embedder": "minilm-static", "image_reader": "ocr-caption", "vector_store": "chroma"}


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


def configured_name(kind: str) -> str | None:
    """The plugin of ``kind`` the environment names (``COE_TEXT_EMBEDDER``, ...), else the kind's default."""
    from coe.settings import settings

    return (getattr(settings(), kind, None) or "").strip() or DEFAULTS.get(kind)


def resolve(kind: str, name: str | None = None, **kwargs: Any) -> Any:
    """The plugin of ``kind`` named ``name`` (default: ``configured_name(kind)``), built with ``kwargs``: the
    keyword arguments its Protocol documents. A name no entry point has is a one-line ``ConfigError`` listing
    those there are (naming the variable when the name came from it)."""
    installed = ", ".join(available(kind)) or "none"
    if name is None:
        name = configured_name(kind)
        if not name:
            raise ConfigError(f"no {kind} plugin is named and the kind has no default; installed: {installed}")
        if name != DEFAULTS.get(kind) and name not in available(kind):
            raise ConfigError(f"COE_{kind.upper()}={name!r} names no {kind} plugin; installed: {installed}")
    return create(kind, name, **kwargs)


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
