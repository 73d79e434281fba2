"""The typed state that flows through the CoE graph, and the graph's input and output schemas."""

from __future__ import annotations

import operator
from typing import Annotated, Any

from typing_extensions import TypedDict


class CoEInput(TypedDict, total=False):
    answer: str
    context: str
    image_path: str | None
    image_text: str             # a caller may bring its own image text (e.g. a dataset caption)
    question_given: str | None
    n_distractors: int
    subject: str | None
    grade: str | None
    exclude_ids: list[str]


class CoEOutput(TypedDict, total=False):
    answer: str
    question: str
    rationale: str | None
    distractors: list[str]
    distractor_notes: list[str]
    exemplars: list[dict[str, Any]]
    image_text: str
    valid: bool
    repaired: list[str]
    status: str                 # verified | unconfirmed | flagged | unverified (verification off)
    reasons: list[str]
    difficulty: str
    verification: dict[str, Any]
    model: str
    trace: list[dict[str, Any]]


class CoEState(CoEInput, CoEOutput, total=False):
    # working fields
    candidate_distractors: list[Any]
    feedback: str
    attempts: int
    question_feedback: str
    question_rounds: int
    distractor_rounds: int
    rejected_options: list[str]
    rejected_questions: list[str]
    route: str
    trace: Annotated[list[dict[str, Any]], operator.add]
