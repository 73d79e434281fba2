"""The learned rankers as the question and distractor nodes use them: the ranked pools of one item, and their
scores turned into the blend's prior and the keep-best step's candidates."""

from __future__ import annotations

import math
from typing import Any

from langgraph.runtime import Runtime

from coe.agents.candidates import Candidate
from coe.agents.selection import QuestionCandidate
from coe.agents.validation import normalize
from coe.retrieval.exemplars import Exemplar

from .node_inputs import rejected_options
from .services import Services, services_of
from .state import CoEState


def ranked_distractors(state: CoEState, s, runtime: Runtime[Services]) -> tuple[list[dict[str, Any]], str | None]:
    """The wide pool ranked by the trained distractor ranker, without rejected options; ``([], reason)`` when
    there is no usable ranker (the heuristic pool decides instead, and the trace says why)."""
    from coe.ranking.select import rank_pool

    retriever = services_of(runtime).retriever
    if retriever is None:
        return [], "no retriever: the heuristic ranking is used"
    return rank_pool(
        state["answer"],
        state.get("question", ""),
        " ".join((state.get("context", ""), state.get("image_text", ""))),
        [Exemplar(**e) for e in state.get("exemplars", [])],
        retriever,
        exclude_ids=state.get("exclude_ids", []),
        exclude_splits=s.exclude_splits,
        rejected=set(rejected_options(state)),
    )


def ranked_questions(state: CoEState, s, runtime: Runtime[Services]) -> tuple[list[dict[str, Any]], str | None]:
    """Exemplar and bank questions ranked by the trained question ranker (no model call)."""
    from coe.ranking.select import rank_question_pool

    retriever = services_of(runtime).retriever
    if retriever is None:
        return [], "no retriever: the model writes the question"
    return rank_question_pool(
        state["answer"],
        " ".join((state.get("context", ""), state.get("image_text", ""))),
        [Exemplar(**e) for e in state.get("exemplars", [])],
        retriever,
        exclude_ids=state.get("exclude_ids", []),
        exclude_splits=s.exclude_splits,
        rejected={normalize(q) for q in state.get("rejected_questions", [])},
    )


def as_prior(ranked: list[dict[str, Any]]) -> list[Candidate]:
    """Ranker scores as the blend's prior: exp(score - best), so the best is 1 and the rest shrink by how far
    the ranker puts them below it."""
    top = ranked[0]["score"]
    return [
        Candidate(text=r["option"], score=round(math.exp(r["score"] - top), 4), sources=r["sources"]) for r in ranked
    ]


def as_question_candidates(chosen: list[dict[str, Any]], ranked: list[dict[str, Any]]) -> list[QuestionCandidate]:
    """The ranker's questions with its softmax over every candidate as their support."""
    top = ranked[0]["score"]
    total = sum(math.exp(r["score"] - top) for r in ranked)
    return [
        QuestionCandidate(
            text=r["text"],
            source="ranker:" + "+".join(r["sources"]),
            support=round(math.exp(r["score"] - top) / total, 4),
        )
        for r in chosen
    ]


def shown_selection(selection: dict[str, Any] | None) -> dict[str, Any]:
    """The trace's record of what an "auto" selection resolved to for this backend, and why."""
    return {"selection": selection} if selection else {}
