"""The typed state that flows through the CoE graph."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class CoEState(TypedDict, total=False):
    # inputs
    answer: str
    context: str
    image_path: str | None
    question_given: str | None
    n_distractors: int
    subject: str | None
    grade: str | None
    exclude_ids: list[str]
    # produced
    image_text: str
    exemplars: list[dict[str, Any]]
    question: str
    rationale: str | None
    distractors: list[str]
    candidate_distractors: list[Any]
    feedback: str
    attempts: int
    valid: bool
    repaired: list[str]
    model: str
    trace: Annotated[list[dict[str, Any]], operator.add]
