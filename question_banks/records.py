"""What a bank file's parser yields: a question read from it, or a problem at a place in it; and the checks
that make a read question an exemplar (one correct answer, at least one wrong option, no repeats)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from coe.agents.validation import normalize
from coe.retrieval.answer_types import answer_type
from coe.retrieval.exemplars import MAX_CONTEXT_CHARS, MAX_RATIONALE_CHARS, Exemplar
from coe.text import one_line

MAX_FIELD_CHARS = 4000  # a question or option longer than this is not a quiz item


@dataclass
class Image:
    name: str  # as the file named it (untrusted: never used as a path)
    data: bytes


@dataclass
class ParsedQuestion:
    position: str  # "line 12", "question 3", "row 4": where a person finds it in the file
    question: str
    answer: str
    distractors: list[str]
    rationale: str = ""
    context: str = ""
    images: list[Image] = field(default_factory=list)


@dataclass
class Problem:
    position: str
    reason: str
    kind: str = "skipped"  # "skipped": read, but not one-key multiple choice; "malformed": unreadable

    def line(self) -> str:
        return f"{self.position}: {self.reason}"


def digest(question: str, answer: str, distractors: list[str]) -> str:
    """The same question whatever its case, punctuation or option order: the duplicate test."""
    parts = [normalize(question), normalize(answer), *sorted(normalize(d) for d in distractors)]
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def checked(q: ParsedQuestion) -> ParsedQuestion | Problem:
    """``q`` with blank and repeated options dropped, or why it cannot be an exemplar."""
    question, answer = q.question.strip(), q.answer.strip()
    if not question:
        return Problem(q.position, "the question text is empty", "malformed")
    if not answer:
        return Problem(q.position, "the correct answer is empty", "malformed")
    if max(len(question), len(answer), *(len(d) for d in q.distractors)) > MAX_FIELD_CHARS:
        return Problem(q.position, f"a field is longer than {MAX_FIELD_CHARS} characters", "malformed")
    # options that differ only in case or punctuation are the point of some questions ("Dear Pablo," or
    # "dear Pablo,"), so only spacing makes two options the same here
    seen = {one_line(answer)}
    wrong: list[str] = []
    for d in (d.strip() for d in q.distractors):
        if d and one_line(d) not in seen:
            seen.add(one_line(d))
            wrong.append(d)
    if not wrong:
        return Problem(q.position, "no wrong option besides the correct answer")
    return ParsedQuestion(q.position, question, answer, wrong, q.rationale.strip(), q.context.strip(), q.images)


def to_exemplar(q: ParsedQuestion, bank: str, *, image: str = "") -> Exemplar:
    """The exemplar stored for ``q``; its texts are spreadsheet-safe, as every exported cell is, since a
    bank's records end up in items and their CSV exports."""
    from coe.exports.tabular import spreadsheet_safe as safe

    key = digest(q.question, q.answer, q.distractors)
    return Exemplar(
        id=f"{bank}-{key[:20]}",
        question=safe(q.question),
        answer=safe(q.answer),
        distractors=[safe(d) for d in q.distractors],
        rationale=safe(q.rationale[:MAX_RATIONALE_CHARS]),
        context=safe(q.context[:MAX_CONTEXT_CHARS]),
        split="imported",
        answer_type=answer_type(q.answer),
        has_image=bool(image),
        image=image,
    )
