"""Does the key fit the question? A model-free check against the exemplar bank.

ScienceQA-style banks are templated: the exemplars that ask (nearly) the same question show what such a
question is answered with — cities for "What is the capital of …?", organisms for food-web questions. A key
unlike every option those exemplars offer (answers and distractors alike) does not answer the question:
"copepod" for "What is the capital of France?". A question the bank does not know gives no verdict."""

from __future__ import annotations

import re

import numpy as np
from pydantic import BaseModel, Field

# The key misfits when its best cosine to the bank's options is below FIT_FLOOR and, for templates whose
# options are diverse (organisms of different food webs), also below the options' own typical
# nearest-neighbour cosine less FIT_MARGIN. On 300 ScienceQA val items (MiniLM) this flags 3.7 % of gold
# items and 87 % of items paired with an unrelated question (FIT_FLOOR alone: 5 % and 95 %).
FIT_FLOOR = 0.5
FIT_MARGIN = 0.15
SAME_QUESTION = 0.9  # question cosine at which a bank question counts as the same question
# A teacher's own question is often the bank's template about another place or organism ("What is the
# capital of France?" beside "... of Louisiana?", cosine 0.70): bank questions down to this cosine are
# candidates for ``template_fit``, which compares them with the names masked.
LIKE_QUESTION = 0.6


class Fit(BaseModel):
    known: bool  # the bank has questions like this one
    score: float | None = None  # best cosine between the key and their options
    floor: float = FIT_FLOOR  # the score this template's keys should reach
    closest: str | None = None
    examples: list[str] = Field(default_factory=list)  # what such questions are answered with

    @property
    def misfit(self) -> bool:
        return self.known and self.score is not None and self.score < self.floor


def answer_fit(
    retriever,
    question: str,
    answer: str,
    *,
    exclude_ids: list[str] | None = None,
    exclude_splits: list[str] | None = None,
) -> Fit:
    same = retriever.same_questions(
        question, n=20, min_similarity=SAME_QUESTION, exclude_ids=exclude_ids, exclude_splits=exclude_splits
    )
    return _fit(retriever, same, answer)


def _masked(question: str) -> str:
    from .item_checks import names

    found = names(question)
    return (
        re.sub(r"\b(" + "|".join(map(re.escape, sorted(found, key=len, reverse=True))) + r")\b", "X", question)
        if found
        else question
    )


def template_fit(
    retriever,
    question: str,
    answer: str,
    *,
    exclude_ids: list[str] | None = None,
    exclude_splits: list[str] | None = None,
) -> Fit:
    """``answer_fit`` over the bank questions that are this question's template about other names ("What
    is the capital of France?" and "... of Louisiana?", cosine 0.70): candidates down to ``LIKE_QUESTION``,
    kept when the two questions with their names masked are the same question."""
    like = retriever.same_questions(
        question, n=50, min_similarity=LIKE_QUESTION, exclude_ids=exclude_ids, exclude_splits=exclude_splits
    )
    if not like:
        return Fit(known=False)
    masked = [_masked(question), *dict.fromkeys(_masked(e.question) for e in like)]
    vectors = retriever.similarity.embed(masked)
    same_template = {m for m, v in zip(masked[1:], vectors[1:]) if float(v @ vectors[0]) >= SAME_QUESTION}
    return _fit(retriever, [e for e in like if _masked(e.question) in same_template][:20], answer)


def _fit(retriever, same: list, answer: str) -> Fit:
    if not same:
        return Fit(known=False)
    options = list(dict.fromkeys(o for e in same for o in [e.answer, *e.distractors] if o.strip()))
    vectors = retriever.similarity.embed([answer, *options])
    sims = vectors[1:] @ vectors[0]
    best = int(sims.argmax())
    floor = FIT_FLOOR
    if len(options) > 1:
        among = vectors[1:] @ vectors[1:].T
        np.fill_diagonal(among, -1.0)
        floor = min(FIT_FLOOR, float(np.median(among.max(axis=1))) - FIT_MARGIN)
    return Fit(
        known=True,
        score=round(float(sims[best]), 4),
        floor=round(floor, 4),
        closest=options[best],
        examples=list(dict.fromkeys(e.answer for e in same))[:3],
    )


def misfit_reason(fit: Fit, answer: str) -> str:
    return (
        f'"{answer}" is unlike what questions like this are answered with in the exemplar bank '
        f"(e.g. {', '.join(repr(x) for x in fit.examples)}; closest {fit.closest!r}, {fit.score:.2f})"
    )
