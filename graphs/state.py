"""The typed state that flows through the CoE graph, and the graph's input and output schemas."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal

from typing_extensions import TypedDict


class TraceEntry(TypedDict, total=False):
    """One step's record in the ``trace``: every entry has ``node`` and ``seconds``, the keys below when they
    apply, and the step's own (the prompt, the parsed reply, the verifier's scores, ...)."""

    node: str
    seconds: float
    attempt: int
    skipped: str
    source: str
    error: str
    note: str
    candidates: list[Any]  # what the question or distractor step ranked, best first
    inputs: dict[str, Any]  # the state fields the node read (the review graph records them)
    settings: dict[str, Any]  # on the first step: the settings the run resolved ("auto" decided)


class CoEInput(TypedDict, total=False):
    answer: str
    context: str
    image_path: str | None
    image_text: str  # a caller may bring its own image text (e.g. a dataset caption)
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
    status: Literal["verified", "unconfirmed", "flagged", "unverified"]  # unverified: verification off
    reasons: list[str]
    difficulty: Literal["easy", "medium", "hard"]  # estimated by the verifier
    verification: dict[str, Any]
    model: str
    trace: list[TraceEntry]


class CoEState(CoEInput, CoEOutput, total=False):
    # working fields
    candidate_distractors: list[Any]
    feedback: str
    attempts: int
    question_feedback: str
    question_rounds: int
    distractor_rounds: int
    rejected_options: list[str]  # options the verifier judged correct too
    rejected_by: dict[str, str]  # options a caller steering the graph rejected, and who (the reviewer)
    rejected_questions: list[str]
    # where verify sends the item next; "kept": validation kept the verified set, flagged, as nothing replaces it
    route: Literal["done", "question", "distractors", "kept"]
    trace: Annotated[list[TraceEntry], operator.add]
