"""Why DG scores are what they are: how many gold distractors the candidate pool could offer at all."""

from __future__ import annotations

from typing import Any

from coe.agents.validation import normalize

from .items import EvalItem
from .predict import exclude_splits


def pool_coverage(items: list[EvalItem], services, image_texts: dict[str, str]) -> dict[str, Any]:
    """Share of gold distractors present in the pool the distractor step is offered, and in its top n
    (what choosing the pool's best candidates alone would recall)."""
    from coe.graphs import nodes

    in_pool = in_top = total = 0
    for item in items:
        n = len(item.gold_distractors)
        state = {"answer": item.answer, "context": item.context, "image_text": image_texts.get(item.pid, ""),
                 "question_given": item.question, "question": item.question, "exclude_ids": [item.pid]}
        config = {"configurable": {"services": services, "exclude_splits": exclude_splits(item.split)}}
        state.update(nodes.retrieve(state, config))
        pool = [normalize(c) for c in nodes._pool(state, config, n)]
        gold = {normalize(g) for g in item.gold_distractors}
        in_pool += len(gold & set(pool))
        in_top += len(gold & set(pool[:n]))
        total += len(gold)
    return {"gold_in_pool": in_pool / max(total, 1), "gold_in_top_n": in_top / max(total, 1), "gold": total}
