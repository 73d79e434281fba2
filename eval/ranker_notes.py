"""The learned rankers in the evaluation report: their val metrics, feature importance, and the wide pool's
coverage per source on the evaluated items."""

from __future__ import annotations

import json
from typing import Any

from .items import load_items, sample
from .report import TEMPLATE_ROWS


def ranker_notes(
    tasks: list[str], split: str, limit: int | None, stratify: bool, seed: int, dataset, services
) -> list[str]:
    from coe.ranking.model import paths, ranker_dir

    from .diagnostics import learned_pool_coverage
    from .runner import cache_root, image_text_for

    directory = ranker_dir(getattr(services.retriever, "banks", ["default"]))
    notes: list[str] = []
    for task, label in (("distractors", "dg"), ("questions", "qg")):
        if label not in tasks:
            continue
        try:
            meta: dict[str, Any] = json.loads(paths(task, directory)[1].read_text())
        except (OSError, ValueError):
            notes.append(f"- No {task} ranker in {directory}: `learned` fell back to the heuristic.")
            continue
        val = meta.get("val", {})
        gains = sorted(meta.get("importance", {}).items(), key=lambda kv: (-kv[1], kv[0]))
        top = ", ".join(f"{k} {v:.0f}" for k, v in gains[:8])
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in val.items() if isinstance(v, float))
        base = ", ".join(f"{k} {v:.3f}" for k, v in val.get("heuristic", {}).items())
        cov = ", ".join(f"{k} {v:.3f}" for k, v in val.get("coverage", {}).items())
        notes.append(
            f"- {task.capitalize()} ranker ({meta.get('train_items')} train / {meta.get('val_items')} val "
            f"items, {meta.get('best_iteration')} trees): val {metrics}; heuristic order on the same "
            f"candidates: {base}. Val pool coverage: {cov}. Feature importance (gain): {top}."
        )
    if "dg" in tasks:
        items = sample(load_items(dataset, split, "dg"), limit, stratify=stratify, seed=seed)
        texts = {i.pid: image_text_for(i, services.image_reader, cache_root()) for i in items}
        coverage = learned_pool_coverage(items, services, texts)
        skip = ("gold", "candidates_per_item", "by_template")
        per = ", ".join(f"{k} {v:.3f}" for k, v in coverage.items() if k not in skip)
        notes.append(
            f"- Wide pool coverage on these {split} items ({coverage['gold']} gold distractors, "
            f"{coverage['candidates_per_item']:.1f} candidates per item): {per}."
        )
        by = coverage["by_template"]
        most = sorted(by, key=lambda t: (-by[t]["gold"], t))[:TEMPLATE_ROWS]
        notes.append(
            "- Wide pool coverage (the oracle's recall) for the templates with the most gold distractors: "
            + "; ".join(f"`{t}` {by[t]['union']:.3f} of {by[t]['gold']}" for t in most)
            + "."
        )
    return notes


PAIRED = {
    "dg": ("bleu4", "rougeL", "recall_exact", "valid"),
    "qg": ("template_exact", "template_near", "bleu4", "states_key"),  # states_key: lower is better
    "rg": ("bleu4", "rougeL", "semantic"),
}


def paired_differences(runs: list[dict[str, Any]], variant: str, *, seed: int, resamples: int) -> list[str]:
    """``variant`` minus each other variant on the same items, per metric, with the 95 % bootstrap interval
    of the paired difference (items resampled, each item's two scores kept together)."""
    from .bootstrap import interval, ratio

    notes = []
    for task, metrics in PAIRED.items():
        ours = next((r for r in runs if r["task"] == task and r["variant"] == variant), None)
        if ours is None:
            continue
        for other in [r for r in runs if r["task"] == task and r["variant"] != variant]:
            pids = sorted(set(ours["item_scores"]) & set(other["item_scores"]))
            parts = []
            for k in metrics:
                diffs = [
                    ours["item_scores"][p].get(k, float("nan")) - other["item_scores"][p].get(k, float("nan"))
                    for p in pids
                ]
                lo, hi = interval(diffs, seed=seed, resamples=resamples)
                parts.append(f"{k} {ratio(diffs):+.3f} [{lo:+.3f}, {hi:+.3f}]")
            notes.append(
                f"- {task.upper()} `{variant}` − `{other['variant']}` on the same {len(pids)} items "
                f"(paired, 95 % interval): " + "; ".join(parts) + "."
            )
    return notes
