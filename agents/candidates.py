"""Candidate distractors pooled from the retrieved exemplars' options.

Templated items share option sets: an exemplar that asks the same kind of question usually offers
options of the right kind, and those that also appear in the new item's own material (labels in the
diagram, names in the context) are the most plausible wrong answers of all."""

from __future__ import annotations

import re

from pydantic import BaseModel

from coe.retrieval.answer_types import answer_type, compatible

from .validation import clean_option, is_placeholder, normalize


class Candidate(BaseModel):
    text: str
    score: float
    in_material: bool = False
    sources: list[str] = []


def _in_material(option: str, material_norm: str) -> bool:
    n = normalize(option)
    return bool(n) and re.search(rf"(^| ){re.escape(n)}( |$)", material_norm) is not None


def candidate_pool(answer: str, exemplars: list, material: str = "", *, limit: int = 12,
                   same_answer_boost: float = 1.5, material_bonus: float = 1.0) -> list[Candidate]:
    want = answer_type(answer)
    target = normalize(answer)
    material_norm = normalize(material)
    pool: dict[str, Candidate] = {}
    order: dict[str, int] = {}
    for ex in exemplars:
        weight = max(ex.score, 0.01) * (same_answer_boost if normalize(ex.answer) == target else 1.0)
        for option in [*ex.distractors, ex.answer]:
            text = clean_option(option)
            key = normalize(text)
            if (not key or key == target or is_placeholder(text)
                    or not compatible(want, answer_type(text), strict=True)):
                continue
            if key not in pool:
                order[key] = len(order)
                pool[key] = Candidate(text=text, score=0.0, in_material=_in_material(text, material_norm))
            pool[key].score += weight
            pool[key].sources.append(ex.id)
    top = max((c.score for c in pool.values()), default=0.0)
    for c in pool.values():
        if c.in_material:
            c.score += material_bonus * top
        c.score = round(c.score, 4)
    ranked = sorted(pool.items(), key=lambda kv: (-kv[1].score, order[kv[0]]))
    return [c for _, c in ranked[:limit]]
