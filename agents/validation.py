"""Distractor validation and repair: untrusted model output never becomes an invalid item."""

from __future__ import annotations

import re
import string
import unicodedata

from pydantic import BaseModel, Field

from coe.retrieval.answer_types import answer_type, compatible
from coe.text import one_line

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation + "“”‘’–—…"})
_PLACEHOLDERS = [
    re.compile(p)
    for p in (
        r"^(answer|option|choice|distractor|alternative|wrong answer|incorrect answer)"
        r"\s*([a-e]|\d+|one|two|three|four|five)?$",
        r"^([a-e]|\d)$",
        r"^(all|none|both|neither) of (the )?(above|these|them)$",
        r"^(n a|na|none|null|tbd|todo|unknown|\.\.\.|etc|placeholder|string|text)$",
        r"^(same as|see) ",
    )
]


def normalize(text: str, *, articles: bool = False) -> str:
    """Case, punctuation, articles and whitespace do not make two options different. ``articles=True`` keeps
    the articles, for finding a phrase inside a text ("sample A" must not shrink to "sample")."""
    t = unicodedata.normalize("NFKC", text).lower().translate(_PUNCT)
    if not articles:
        t = _ARTICLES.sub(" ", t)
    return one_line(t)


def is_placeholder(text: str) -> bool:
    light = normalize(text, articles=True)  # articles stay in: "N/A" must not shrink to "n"
    return not normalize(text) or any(p.search(light) for p in _PLACEHOLDERS)


class Verdict(BaseModel):
    valid: bool
    problems: list[str] = Field(default_factory=list)
    kept: list[str] = Field(default_factory=list)  # usable distractors, in order, deduplicated

    def feedback(self) -> str:
        return "; ".join(self.problems)


def clean_option(text: str) -> str:
    """Strip list markers and quotes that models wrap around options, keep the option itself."""
    t = str(text).strip()
    t = re.sub(r"^\s*(\(?[a-eA-E1-9]\)|[a-eA-E1-9][.:]\s)\s*", "", t)
    t = t.strip().strip("\"'`").strip()
    return one_line(t)


def validate_distractors(distractors: list, answer: str, n: int) -> Verdict:
    problems: list[str] = []
    kept: list[str] = []
    seen = {normalize(answer)}
    for raw in distractors:
        if not isinstance(raw, str):
            problems.append(f"{raw!r} is not text")
            continue
        d = clean_option(raw)
        if is_placeholder(d):
            problems.append(f"{raw!r} is empty or a placeholder")
        elif normalize(d) == normalize(answer):
            problems.append(f"{d!r} is the correct answer")
        elif normalize(d) in seen:
            problems.append(f"{d!r} repeats another option")
        elif len(d) > 300:
            problems.append(f"{d[:40]!r}... is too long")
        else:
            seen.add(normalize(d))
            kept.append(d)
    if len(distractors) != n:
        problems.append(f"expected exactly {n} distractors, got {len(distractors)}")
    valid = not problems and len(kept) == n
    return Verdict(valid=valid, problems=problems, kept=kept[:n])


def exemplar_options(exemplars: list) -> list[str]:
    """Each exemplar's distractors and answer, in order (an exemplar's answer is a wrong option for a
    different item unless it equals that item's answer, which filling skips)."""
    return [o for ex in exemplars for o in [*ex.distractors, ex.answer]]


def fill_from_options(kept: list[str], answer: str, n: int, options: list[str]) -> tuple[list[str], list[str]]:
    """Complete the list with answer-type-compatible options, in the order given.
    Returns (distractors, the ones that were filled in)."""
    want = answer_type(answer)
    seen = {normalize(answer)} | {normalize(d) for d in kept}
    out, filled = list(kept), []
    for cand in options:
        if len(out) >= n:
            break
        c = clean_option(cand)
        if (
            is_placeholder(c)
            or normalize(c) in seen
            or not compatible(want, answer_type(c), strict=True)
            or len(c.split()) > 2 * len(answer.split()) + 2
        ):
            continue
        seen.add(normalize(c))
        out.append(c)
        filled.append(c)
    return out, filled


def fill_from_exemplars(kept: list[str], answer: str, n: int, exemplars: list) -> tuple[list[str], list[str]]:
    """Complete the list from the retrieved exemplars' options (see ``fill_from_options``)."""
    return fill_from_options(kept, answer, n, exemplar_options(exemplars))
