"""Predictions of one variant for one item and task: the baselines and the CoE graph's ablations."""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from coe.agents.validation import clean_option, normalize
from coe.errors import ModelOutputError
from coe.retrieval.answer_types import answer_type, compatible
from coe.retrieval.retriever import RetrievalQuery

from .items import EvalItem

# Graph settings per variant; "copy" uses no model at all.
# Notes are not scored, and eval's given questions are gold ones: neither is spent time on here.
_EVAL = {"write_notes": False, "check_given_question": False}
VARIANTS: dict[str, dict[str, Any] | None] = {
    "copy": None,
    # no model: the pool's ranking
    "pool-rank": {"use_rationale": False, "pool_selection": "rank", "verify": False, "write_notes": False},
    # no model: the trained rankers over the wide pool
    "learned": {
        "use_rationale": False,
        "pool_selection": "learned",
        "question_selection": "learned",
        "verify": False,
        "write_notes": False,
    },
    "zero-shot": {"use_exemplars": False, "use_pool": False, "verify": False, "write_notes": False},
    "coe-paper-prompts": {
        "mode": "coe",
        "use_pool": False,
        "verify": False,
        "pool_selection": "model",
        "write_notes": False,
    },
    # The first version: the model writes one question / chooses the distractors, nothing checks them.
    "greedy": {"pool_selection": "model", "verify": False, "write_notes": False},
    "no-cot": {"use_rationale": False, "pool_selection": "model", "verify": False, "write_notes": False},
    # Generate several, keep the best, verified (the default graph).
    "coe": {**_EVAL},
    "coe-no-cot": {**_EVAL, "use_rationale": False},
}


def base_variant(spec: str) -> str:
    """The variant a spec builds on: ``coe`` for ``coe:k=2``."""
    return spec.split(":")[0]


def variant_settings(spec: str) -> dict[str, Any] | None:
    """The graph settings of a variant spec: a name from ``VARIANTS``, optionally followed by ``:KEY=VALUE``
    overrides of any graph setting (``coe:k=2:orders=1``), so an ablation of one setting runs beside its
    base variant on the same items. None for the model-free ``copy``; a bad spec is a one-line input error."""
    from coe.errors import InputError
    from coe.graphs.settings import parse_assignments

    name, *pairs = spec.split(":")
    if name not in VARIANTS:
        raise InputError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    base = VARIANTS[name]
    if not pairs:
        return base
    if base is None:
        raise InputError(f"variant {name!r} runs no graph: it takes no settings ({spec!r})")
    return {**base, **parse_assignments(pairs, where=f"--variant {spec}: ")}


def exclude_splits(split: str) -> list[str]:
    """The exemplar pool is train (+ val when evaluating test): never the split under evaluation."""
    return ["test"] if split == "test" else ["val", "test"]


def eval_query(item: EvalItem, image_text: str, task: str) -> RetrievalQuery:
    """The retrieval query for an evaluated item: the item itself and its split never come back, and QG
    items ask without their gold question."""
    return RetrievalQuery(
        answer=item.answer,
        question=None if task == "qg" else item.question,
        context=item.context,
        image_text=image_text,
        exclude_ids=[item.pid],
        exclude_splits=exclude_splits(item.split),
    )


def predict_copy(task: str, item: EvalItem, retriever, image_text: str) -> dict[str, Any]:
    """No model: the nearest answer-type-compatible exemplar's question, rationale or distractors."""
    found, _ = retriever.retrieve(eval_query(item, image_text, task), k=10)
    want = answer_type(item.answer)
    found = [e for e in found if compatible(want, e.answer_type, strict=True)] or found
    if not found:
        return {"question": "", "rationale": "", "distractors": [], "source": None}
    if task == "qg":
        return {"question": found[0].question, "source": found[0].id}
    if task == "rg":
        return {"rationale": found[0].rationale, "source": found[0].id}
    n = len(item.gold_distractors)
    out: list[str] = []
    seen = {normalize(item.answer)}
    for ex in found:  # the nearest exemplar first; later ones only complete a short list
        for d in ex.distractors:
            d = clean_option(d)
            if normalize(d) not in seen and len(out) < n:
                seen.add(normalize(d))
                out.append(d)
    return {"distractors": out, "source": found[0].id}


def predict_graph(
    task: str, item: EvalItem, services, settings: dict[str, Any], image_text: str, use_image: bool
) -> dict[str, Any]:
    """Run the graph itself for one task: QG ends after the question step, RG after the rationale step
    (given the gold question), DG runs the whole item (given the gold question)."""

    n = len(item.gold_distractors)
    state: dict[str, Any] = {
        "answer": item.answer,
        "context": item.context,
        "image_text": image_text,
        "image_path": str(item.image_path) if use_image and item.image_path else None,
        "question_given": None if task == "qg" else item.question,
        "n_distractors": max(n, 1),
        "exclude_ids": [item.pid],
    }
    from coe.graphs.settings import check_settings

    chosen = {"n_distractors": max(n, 1), "exclude_splits": exclude_splits(item.split), **settings}
    if task == "rg":
        chosen["use_rationale"] = True
    config = {"configurable": check_settings(chosen).model_dump(exclude_unset=True)}
    try:
        out = _task_graph(task).invoke(state, config=config, context=services)
    except ModelOutputError as exc:  # a step that failed loudly scores as invalid; the run goes on
        return {TASK_FIELD[task]: None, "error": str(exc)}
    result: dict[str, Any] = {TASK_FIELD[task]: out.get(TASK_FIELD[task]), "usage": _usage(out.get("trace", []))}
    if task == "dg":
        result.update(
            {
                "rationale": out.get("rationale"),
                "repaired": out.get("repaired", []),
                "status": out.get("status"),
                "reasons": out.get("reasons", []),
                "verification": out.get("verification"),
            }
        )
    if task == "qg":
        q: dict[str, Any] = next((t for t in out.get("trace", []) if t.get("node") == "question"), {})
        result["candidates"] = [
            {"text": c["text"], "source": c["source"], "score": c.get("score")} for c in q.get("candidates", [])
        ]
    return result


TASK_FIELD = {"qg": "question", "rg": "rationale", "dg": "distractors"}
_UNTIL = {"qg": "question", "rg": "rationale", "dg": None}


@cache
def _task_graph(task: str):
    from coe.graphs.build import build_graph

    return build_graph(until=_UNTIL[task])


def _usage(trace: list[dict]) -> dict[str, int]:
    total = {"prompt_tokens": 0, "completion_tokens": 0}
    for t in trace:
        for k in total:
            total[k] += (t.get("usage") or {}).get(k, 0)
    return total


def predict(task: str, variant: str, item: EvalItem, services, image_text: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    settings = variant_settings(variant)
    if settings is None:
        result = predict_copy(task, item, services.retriever, image_text)
    else:
        use_image = bool(getattr(services.llm, "supports_images", False))
        result = predict_graph(task, item, services, settings, image_text, use_image)
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result
