"""Evaluation items from ScienceQA and their stratified sampling."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel

TASKS = ("qg", "rg", "dg")


class EvalItem(BaseModel):
    pid: str
    split: str
    question: str
    answer: str
    gold_distractors: list[str]
    context: str
    image_path: Path | None
    dataset_image_text: str
    gold_rationale: str
    subject: str | None
    grade_band: str
    context_type: str

    @property
    def template(self) -> str:
        """The gold question's template (key, names and numbers masked): the report's per-template rows show
        where a variant fails, e.g. the templates whose gold distractors are drawn at random."""
        from coe.ranking.templates import template_mask

        return template_mask(self.question, self.answer)

    @classmethod
    def from_problem(cls, p) -> "EvalItem":
        hint = "" if p.hint_missing else p.hint.strip()
        context_type = "IMG+TXT" if p.has_image and hint else "IMG" if p.has_image else "TXT" if hint else "NO"
        band = "unknown"
        if p.grade and p.grade.startswith("grade") and p.grade[5:].isdigit():
            band = "1-6" if int(p.grade[5:]) <= 6 else "7-12"
        image_text = " ".join(
            t
            for t in (
                f"Image caption: {p.caption}" if p.caption else "",
                f"Text in the image: {p.ocr_text}" if p.ocr_text else "",
            )
            if t
        )
        return cls(
            pid=p.pid,
            split=p.split,
            question=p.question,
            answer=p.answer,
            gold_distractors=list(p.distractors),
            context=hint,
            image_path=p.image_path,
            dataset_image_text=image_text,
            gold_rationale=p.rationale.strip(),
            subject=p.subject,
            grade_band=band,
            context_type=context_type,
        )


def load_items(dataset, split: str, task: str) -> list[EvalItem]:
    items = [EvalItem.from_problem(p) for p in dataset.split(split)]
    if task == "rg":  # only items whose gold rationale exists
        items = [i for i in items if i.gold_rationale]
    if task == "dg":
        items = [i for i in items if i.gold_distractors]
    return items


def stratum(item: EvalItem) -> tuple[str, str]:
    return item.context_type, item.subject or "unknown"


def sample(items: list[EvalItem], limit: int | None, *, stratify: bool = False, seed: int = 0) -> list[EvalItem]:
    """``limit`` items; with ``stratify``, proportional to each (context type, subject) stratum with
    largest-remainder rounding, so small strata keep their share; always deterministic for a seed."""
    if limit is None or limit >= len(items):
        return list(items)
    rng = random.Random(seed)
    if not stratify:
        return sorted(rng.sample(items, limit), key=lambda i: int(i.pid) if i.pid.isdigit() else i.pid)
    groups: dict[tuple[str, str], list[EvalItem]] = defaultdict(list)
    for it in items:
        groups[stratum(it)].append(it)
    quotas = {k: limit * len(v) / len(items) for k, v in groups.items()}
    counts = {k: int(q) for k, q in quotas.items()}
    for k in sorted(quotas, key=lambda k: (-(quotas[k] - counts[k]), k))[: limit - sum(counts.values())]:
        counts[k] += 1
    chosen: list[EvalItem] = []
    for k in sorted(groups):
        chosen += rng.sample(groups[k], min(counts[k], len(groups[k])))
    return sorted(chosen, key=lambda i: int(i.pid) if i.pid.isdigit() else i.pid)
