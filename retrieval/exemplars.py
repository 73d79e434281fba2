"""The exemplar record: what a retrieved item (ScienceQA's or an imported bank's) contributes to a prompt."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from .answer_types import answer_type

MAX_CONTEXT_CHARS = 1500
MAX_RATIONALE_CHARS = 2000


class Exemplar(BaseModel):
    id: str
    question: str
    answer: str
    distractors: list[str] = Field(default_factory=list)
    rationale: str = ""
    context: str = ""
    split: str = ""
    subject: str | None = None
    grade: str | None = None
    answer_type: str = ""
    has_image: bool = False
    # an imported bank's picture, a file under that bank's folder ("" for ScienceQA, whose dataset has them)
    image: str = ""
    # set by the retriever: which exemplar bank the record came from
    bank: str = ""
    score: float = 0.0
    signals: dict[str, float] = Field(default_factory=dict)

    @classmethod
    def from_problem(cls, p) -> "Exemplar":
        context = " ".join(s for s in (p.hint if not p.hint_missing else "", p.caption, p.ocr_text) if s)
        return cls(
            id=p.pid,
            question=p.question,
            answer=p.answer,
            distractors=list(p.distractors),
            rationale=p.rationale[:MAX_RATIONALE_CHARS],
            context=context[:MAX_CONTEXT_CHARS],
            split=p.split,
            subject=p.subject,
            grade=p.grade,
            answer_type=answer_type(p.answer),
            has_image=p.has_image,
        )

    def to_metadata(self) -> dict[str, Any]:
        """Flat scalar metadata, as vector stores require."""
        return {
            "question": self.question,
            "answer": self.answer,
            "distractors": json.dumps(self.distractors),
            "rationale": self.rationale,
            "context": self.context,
            "split": self.split,
            "subject": self.subject or "",
            "grade": self.grade or "",
            "answer_type": self.answer_type,
            "has_image": self.has_image,
            **({"image": self.image} if self.image else {}),
        }

    @classmethod
    def from_metadata(cls, id: str, meta: dict[str, Any]) -> "Exemplar":
        return cls(
            id=id,
            question=meta.get("question", ""),
            answer=meta.get("answer", ""),
            distractors=json.loads(meta.get("distractors") or "[]"),
            rationale=meta.get("rationale", ""),
            context=meta.get("context", ""),
            split=meta.get("split", ""),
            subject=meta.get("subject") or None,
            grade=meta.get("grade") or None,
            answer_type=meta.get("answer_type", ""),
            has_image=bool(meta.get("has_image", False)),
            image=meta.get("image") or "",
        )
