"""Local model files: pinned presets, verified pulls, and name-to-path resolution."""

from coe.modelstore.presets import PRESETS, Artifact, Preset, Source, default_llm_order
from coe.modelstore.store import is_pulled, list_models, models_table, pull, resolve_embedder, resolve_llm

__all__ = [
    "PRESETS",
    "Artifact",
    "Preset",
    "Source",
    "default_llm_order",
    "is_pulled",
    "list_models",
    "models_table",
    "pull",
    "resolve_embedder",
    "resolve_llm",
]
