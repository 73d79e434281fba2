"""Why DG scores are what they are: how many gold distractors the candidate pool could offer at all."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from coe.agents.validation import normalize

from .items import EvalItem
from .predict import eval_query, exclude_splits


def _retrieved(item: EvalItem, services, image_text: str) -> list:
    """The exemplars the graph retrieves for a DG item (the shown ones and the pool's)."""
    from coe.graphs.settings import GraphSettings

    settings = GraphSettings()
    found, _ = services.retriever.retrieve(eval_query(item, image_text, "dg"), k=max(settings.k, settings.pool_k))
    return found


def pool_coverage(items: list[EvalItem], services, image_texts: dict[str, str]) -> dict[str, Any]:
    """Share of gold distractors present in the pool the distractor step is offered, and in its top n
    (what choosing the pool's best candidates alone would recall)."""
    from coe.agents.candidates import distractor_pool

    in_pool = in_top = total = 0
    for item in items:
        n = len(item.gold_distractors)
        image_text = image_texts.get(item.pid, "")
        found = _retrieved(item, services, image_text)
        pool = [
            normalize(c.text)
            for c in distractor_pool(item.answer, found, item.context, image_text, question=item.question, n=n)
        ]
        gold = {normalize(g) for g in item.gold_distractors}
        in_pool += len(gold & set(pool))
        in_top += len(gold & set(pool[:n]))
        total += len(gold)
    return {"gold_in_pool": in_pool / max(total, 1), "gold_in_top_n": in_top / max(total, 1), "gold": total}


def learned_pool_coverage(items: list[EvalItem], services, image_texts: dict[str, str]) -> dict[str, Any]:
    """Gold distractors in the learned ranker's wide pool, per source and for the union, on these items,
    with the pool's mean size and what ranking the pool perfectly would recall (the oracle), also per
    question template."""
    from coe.ranking.bank import stats_for
    from coe.ranking.candidates import SOURCES, build_pool, coverage

    totals = {s: 0.0 for s in (*SOURCES, "union", "gold")}
    per_template: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # gold found, gold
    size = 0
    for item in items:
        image_text = image_texts.get(item.pid, "")
        splits = exclude_splits(item.split)
        found = _retrieved(item, services, image_text)
        pool = build_pool(
            item.answer,
            item.question,
            " ".join((item.context, image_text)),
            found,
            stats_for(services.retriever, splits),
            exclude_ids=(item.pid,),
        )
        size += len(pool)
        found_here = coverage(pool, item.gold_distractors)
        for k, v in found_here.items():
            totals[k] += v
        per_template[item.template][0] += found_here["union"]
        per_template[item.template][1] += found_here["gold"]
    gold = max(totals["gold"], 1.0)
    return {
        **{s: totals[s] / gold for s in (*SOURCES, "union")},
        "gold": int(totals["gold"]),
        "candidates_per_item": size / max(len(items), 1),
        "by_template": {t: {"union": f / max(g, 1.0), "gold": int(g)} for t, (f, g) in per_template.items()},
    }
