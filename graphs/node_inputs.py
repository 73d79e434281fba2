"""What the graph's nodes read from the state and the run's settings: the item as the steps take it, the
exemplars shown in prompts, the candidate pool without rejected options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig

from coe.agents.candidates import Candidate, distractor_pool
from coe.agents.generation import ItemInput
from coe.agents.validation import normalize
from coe.plugins.llm.protocol import ImageRef
from coe.retrieval.exemplars import Exemplar

from .services import services_of
from .settings import GraphSettings, resolve_selection, settings_from
from .state import CoEState


def item_input(state: CoEState) -> ItemInput:
    image_path = state.get("image_path")
    images = [ImageRef(path=Path(image_path))] if image_path else []
    return ItemInput(
        answer=state["answer"],
        context=state.get("context", ""),
        image_text=state.get("image_text", ""),
        question=state.get("question_given"),
        images=images,
    )


def shown_exemplars(state: CoEState, config: RunnableConfig | None = None) -> list[Exemplar]:
    """The exemplars shown in prompts: the top k of those retrieved (the rest only feed the pool)."""
    k = settings_from(config).k if config is not None else None
    return [Exemplar(**e) for e in state.get("exemplars", [])][:k]


def pool_candidates(state: CoEState, config: RunnableConfig, n: int) -> list[Candidate]:
    """The candidate pool for this item, without options the verifier already rejected."""
    if not settings_from(config).use_pool:
        return []
    rejected = rejected_options(state)
    return [
        c
        for c in distractor_pool(
            state["answer"],
            [Exemplar(**e) for e in state.get("exemplars", [])],
            state.get("context", ""),
            state.get("image_text", ""),
            question=state.get("question", ""),
            n=n,
        )
        if normalize(c.text) not in rejected
    ]


def pool_texts(state: CoEState, config: RunnableConfig, n: int) -> list[str]:
    return [c.text for c in pool_candidates(state, config, n)]


def rejected_options(state: CoEState) -> dict[str, str]:
    """Options that may not come back, by normalised text, with who rejected them."""
    out = {normalize(r): "the verifier" for r in state.get("rejected_options") or []}
    out.update({normalize(r): who for r, who in (state.get("rejected_by") or {}).items()})
    return out


def run_settings(config: RunnableConfig | None, runtime) -> tuple[GraphSettings, dict[str, Any] | None]:
    """The run's settings with "auto" resolved for its model (``resolve_selection``)."""
    return resolve_selection(settings_from(config), services_of(runtime).llm)
