"""What ``coe bench --compare`` runs (the same items as ``coe bench``) and how it prints the two arms."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from .bench import CONFIGURABLE, graph_input, timed_items
from .items import load_items


def run(
    ref: str, dataset, models: list[str], *, items: int, queries: int, status: Console, warmup: int = 1
) -> list[dict[str, Any]]:
    """One comparison per model over ``items`` stratified test items, after ``warmup`` untimed ones on
    each arm; with no model, retrieval over ``queries`` test questions (each excluding itself), on the
    installed exemplar index."""
    from .compare import compare

    env = {"COE_SCIENCEQA_DIR": str(dataset.root)}  # the arms read the same dataset as the items come from
    if not models:
        reqs: list[dict[str, Any]] = [
            {
                "answer": i.answer,
                "question": i.question,
                "context": i.context,
                "image_text": i.dataset_image_text,
                "exclude_ids": [i.pid],
            }
            for i in list(load_items(dataset, "test", "dg"))[:queries]
        ]
        with status.status(f"retrieval: {len(reqs)} queries, each on both arms in turn…") as s:
            return [
                compare(
                    ref,
                    mode="retrieval",
                    requests=reqs,
                    env=env,
                    progress=lambda n, t: s.update(f"retrieval: {n}/{t} queries on both arms"),
                )
            ]
    warm, chosen = timed_items(dataset, items, warmup)

    def request(item) -> dict[str, Any]:
        return {"input": graph_input(item), "configurable": dict(CONFIGURABLE)}

    out = []
    for model in models:
        with status.status(f"{model}: loading both arms…") as s:
            out.append(
                compare(
                    ref,
                    mode="items",
                    model=model,
                    requests=[request(i) for i in chosen],
                    warmup=[request(i) for i in warm],
                    env=env,
                    progress=lambda n, t: s.update(f"{model}: {n}/{t} items on both arms"),
                )
            )
    return out


def _f(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def print_compare(results: list[dict[str, Any]], out: Console) -> None:
    for r in results:
        ref, cur = r["arms"]
        title = (
            f"{r['n']} {'queries' if r['mode'] == 'retrieval' else 'items'}, taking turns · "
            f"ratio = reference / current (above 1: current is faster)"
        )
        t = Table(title=title)
        t.add_column("")
        t.add_column(f"reference: {ref['label']}", justify="right")
        t.add_column(f"current: {cur['label']}", justify="right")
        t.add_column("ratio", justify="right")
        if r["mode"] == "retrieval":
            for k in ("p50_ms", "p95_ms", "mean_ms"):
                t.add_row(f"retrieval {k[:-3]} ms", f"{ref[k]:.1f}", f"{cur[k]:.1f}", _f(r["ratio"][k], ".2f"))
        else:
            t.add_row("model", ref["model"], cur["model"], "")
            if ref.get("warmup_seconds"):
                t.add_row(
                    "warm-up s (untimed)",
                    *[" ".join(f"{x:.1f}" for x in a.get("warmup_seconds", [])) for a in (ref, cur)],
                    "",
                )
            t.add_row(
                "s/item",
                f"{ref['seconds_per_item']:.2f}",
                f"{cur['seconds_per_item']:.2f}",
                _f(r["ratio"]["seconds_per_item"], ".2f"),
            )
            for step in sorted(set(ref["step_seconds"]) | set(cur["step_seconds"])):
                t.add_row(
                    f"  {step} s",
                    f"{ref['step_seconds'].get(step, 0.0):.2f}",
                    f"{cur['step_seconds'].get(step, 0.0):.2f}",
                    _f(r["ratio"].get(step), ".2f"),
                )
                cells = [_tokens(a["step_tokens"].get(step, {})) for a in (ref, cur)]
                if any(cells):
                    t.add_row("    prompt tokens", *cells, "")
            for key, label in (
                ("decode_tokens_per_s", "decode tokens/s"),
                ("prompt_tokens_per_s", "prompt eval tokens/s"),
                ("prompt_tokens_evaluated_per_item", "prompt tokens evaluated/item"),
            ):
                vals = [(a["llama"] or {}).get(key) for a in (ref, cur)]
                if any(v is not None for v in vals):
                    t.add_row(label, *[_f(v, ".1f") for v in vals], "")
            t.add_row("failed items", str(ref["failed"]), str(cur["failed"]), "")
        out.print(t)


def _tokens(counts: dict[str, float]) -> str:
    """Prompt tokens a step evaluated and reused (per item), where its trace says; else the prompt length."""
    if "prompt_tokens_evaluated" in counts or "prompt_tokens_reused" in counts:
        evaluated, reused = counts.get("prompt_tokens_evaluated", 0), counts.get("prompt_tokens_reused", 0)
        return f"{evaluated:.0f} eval / {reused:.0f} reused"
    if counts.get("prompt_tokens"):
        return f"{counts['prompt_tokens']:.0f} (no reuse reported)"
    return ""
