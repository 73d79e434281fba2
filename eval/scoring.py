"""Per-item scores for each task, and their aggregation into overall means and breakdowns."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from . import metrics as m
from .bootstrap import RESAMPLES, interval
from .items import EvalItem
from .template_match import template_scores

EMBED_MATCH_THRESHOLD = 0.85  # cosine between MiniLM vectors at which two options count as the same


class Scorer:
    def __init__(self, embedder) -> None:
        self.embedder = embedder
        self.embed_same = m.embedding_same(embedder.embed, EMBED_MATCH_THRESHOLD)

    def semantic(self, a: str, b: str) -> float:
        v = self.embedder.embed([a or " ", b or " "])
        return float(np.dot(v[0], v[1]))

    def score(self, task: str, item: EvalItem, pred: dict[str, Any]) -> dict[str, float]:
        if task == "dg":
            return self._dg(item, pred.get("distractors"))
        key, gold = ("question", item.question) if task == "qg" else ("rationale", item.gold_rationale)
        text = pred.get(key) or ""
        scores = {
            **m.text_scores(text, gold),
            "semantic": self.semantic(text, gold),
            "valid": float(bool(text.strip())),
        }
        if task == "qg":
            scores.update(template_scores(text, gold, item.answer))
        return scores

    def _dg(self, item: EvalItem, distractors: list[str] | None) -> dict[str, float]:
        gold = item.gold_distractors
        pred = list(distractors or [])
        scores = m.text_scores(m.numbered_list(pred), m.numbered_list(gold))
        scores["semantic"] = self.semantic(m.numbered_list(pred), m.numbered_list(gold))
        for name, same in (("exact", m.exact_same), ("embed", self.embed_same)):
            for k, v in m.set_scores(pred, gold, same).items():
                scores[f"{k}_{name}"] = v
        for k, v in m.validity(distractors, item.answer, len(gold)).items():
            scores[k] = float(v)
        return scores


BREAKDOWNS = ("subject", "grade_band", "context_type", "template")


def aggregate(
    rows: list[tuple[EvalItem, dict[str, float]]], *, seed: int = 0, resamples: int = RESAMPLES
) -> dict[str, Any]:
    """Overall means with 95 % bootstrap intervals (``ci``), and breakdowns (subject, grade band, context
    type, the gold question's template) with the items each covers. One seed for every metric and variant:
    variants scored on the same items are resampled alike."""

    def means(group: list[dict[str, float]]) -> dict[str, float]:
        keys = group[0].keys() if group else []
        return {k: m.mean([g[k] for g in group]) for k in keys}

    out: dict[str, Any] = {"n": len(rows), "overall": means([s for _, s in rows]), "breakdowns": {}}
    out["ci"] = {k: list(interval([s[k] for _, s in rows], seed=seed, resamples=resamples)) for k in out["overall"]}
    for field in BREAKDOWNS:
        groups: dict[str, list[dict[str, float]]] = defaultdict(list)
        for item, s in rows:
            groups[getattr(item, field) or "unknown"].append(s)
        out["breakdowns"][field] = {k: {"n": len(v), **means(v)} for k, v in sorted(groups.items())}
    return out
