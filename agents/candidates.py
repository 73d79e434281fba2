"""Candidate distractors pooled from the retrieved exemplars' options.

Templated items share option sets: an exemplar that asks the same kind of question usually offers
options of the right kind, and those that also appear in the new item's own material (labels in the
diagram, names in the context) are the most plausible wrong answers of all."""

from __future__ import annotations

import difflib
import math
import re

from pydantic import BaseModel

from coe.retrieval.answer_types import answer_type, compatible

from .validation import clean_option, is_placeholder, normalize


POOL_VERSION = 3  # part of evaluation cache keys: bump when pooling changes what the model is offered


class Candidate(BaseModel):
    text: str
    score: float
    in_material: bool = False
    sources: list[str] = []


_NEGATIONS = {"not", "no", "never", "neither", "nor", "non", "without", "cannot"}


def restates_answer(option: str, answer: str) -> bool:
    """A longer or shorter wording of the answer ("The magnetic force is the same ..." for "The magnitude of
    the magnetic force is the same ...") is not a wrong option; one that adds a negation is."""
    a, o = set(normalize(answer).split()), set(normalize(option).split())
    if len(a) < 3 or len(o) < 3:
        return False
    if a <= o or o <= a:
        return not ((a ^ o) & _NEGATIONS)
    label = lambda t: t.split(":", 1)[0].strip().lower() if ":" in t else None  # noqa: E731
    return label(option) is not None and label(option) == label(answer)


def _length_fit(option: str, answer: str) -> float:
    """Options about as long as the answer look like its siblings; a 1-word option beside a 3-word answer
    (a genotype beside a phenotype) less so."""
    ratio = max(len(option.split()), 1) / max(len(answer.split()), 1)
    return 1.0 / (1.0 + abs(math.log(ratio)))


def _in_material(option: str, material_norm: str) -> bool:
    n = normalize(option)
    return bool(n) and re.search(rf"(^| ){re.escape(n)}( |$)", material_norm) is not None


def word_map(src: str, dst: str, *, min_ratio: float = 0.5, max_words: int = 3) -> dict[str, str]:
    """Short word spans that differ between two texts of the same shape ("... that Russell acquired ..."
    vs "... that Seth acquired ..." gives {"Russell": "Seth"}); nothing when the texts are unlike."""
    a, b = src.split(), dst.split()
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    if not a or not b or sm.ratio() < min_ratio:
        return {}
    out: dict[str, str] = {}
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "replace" and i2 - i1 <= max_words and j2 - j1 <= max_words:
            old, new = " ".join(a[i1:i2]).strip(".,;:?!"), " ".join(b[j1:j2]).strip(".,;:?!")
            if old and new and old != new:
                out[old] = new
    return out


def adapt(option: str, mapping: dict[str, str]) -> str:
    """Carry an exemplar's option over to the new item by the exemplar → item word map."""
    for old, new in mapping.items():
        option = re.sub(rf"(?<![\w-]){re.escape(old)}(?![\w-])", new, option)
    return option


def candidate_pool(
    answer: str,
    exemplars: list,
    material: str = "",
    *,
    question: str = "",
    limit: int = 12,
    same_answer_boost: float = 1.5,
    same_question_boost: float = 3.0,
    material_bonus: float = 0.5,
    type_penalty: float = 0.3,
) -> list[Candidate]:
    want = answer_type(answer)
    target = normalize(answer)
    material_norm = normalize(material)
    pool: dict[str, Candidate] = {}
    order: dict[str, int] = {}

    def add(text: str, weight: float, source: str) -> None:
        key = normalize(text)
        kind = answer_type(text)
        if (
            not key
            or key == target
            or is_placeholder(text)
            or not compatible(want, kind)
            or restates_answer(text, answer)
        ):
            return
        weight *= _length_fit(text, answer) * (1.0 if compatible(want, kind, strict=True) else type_penalty)
        if key not in pool:
            order[key] = len(order)
            pool[key] = Candidate(text=text, score=0.0, in_material=_in_material(text, material_norm))
        pool[key].score += weight
        pool[key].sources.append(source)

    for ex in exemplars:
        weight = max(ex.score, 0.01) * (same_answer_boost if normalize(ex.answer) == target else 1.0)
        if question and normalize(ex.question) == normalize(question):
            weight *= same_question_boost  # same template: its options are the right kind
        mapping = {**(word_map(ex.question, question) if question else {}), **word_map(ex.answer, answer)}
        for option in [*ex.distractors, ex.answer]:
            text = clean_option(option)
            adapted = clean_option(adapt(option, mapping)) if mapping else text
            if adapted != text:
                # The option rewritten for the new item ("Russell is ..." → "Seth is ...") is the better
                # candidate; the original keeps a little weight in case the rewrite went wrong.
                add(adapted, 1.2 * weight, f"{ex.id}*")
                add(text, 0.3 * weight, ex.id)
            else:
                add(text, weight, ex.id)
    top = max((c.score for c in pool.values()), default=0.0)
    for c in pool.values():
        if c.in_material:
            c.score += material_bonus * top
        c.score = round(c.score, 4)
    ranked = sorted(pool.items(), key=lambda kv: (-kv[1].score, order[kv[0]]))
    return [c for _, c in ranked[:limit]]


def distractor_pool(
    answer: str, exemplars: list, context: str = "", image_text: str = "", *, question: str = "", n: int = 3
) -> list[Candidate]:
    """The pool the distractor step is offered for one item: the exemplars' options, boosted where the item's
    material (context and image text) names them. Public so diagnostics and fine-tuning records use exactly it."""
    return candidate_pool(answer, exemplars, " ".join((context, image_text)), question=question, limit=max(12, 2 * n))
