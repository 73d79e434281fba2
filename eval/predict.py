"""Predictions of one variant for one item and task: the baselines and the CoE graph's ablations."""

from __future__ import annotations

import time
from typing import Any

from coe.agents.validation import clean_option, normalize
from coe.errors import ModelOutputError
from coe.retrieval.answer_types import answer_type, compatible
from coe.retrieval.retriever import RetrievalQuery

from .items import EvalItem

# Graph settings per variant; "copy" uses no model at all.
VARIANTS: dict[str, dict[str, Any] | None] = {
    "copy": None,
    "zero-shot": {"use_exemplars": False, "use_pool": False},
    "no-cot": {"use_rationale": False},
    "coe": {},
    "coe-paper-prompts": {"mode": "coe", "use_pool": False},
    "pool-rank": {"use_rationale": False, "pool_selection": "rank"},  # the pool's ranking picks, not the LLM
}


def exclude_splits(split: str) -> list[str]:
    """The exemplar pool is train (+ val when evaluating test): never the split under evaluation."""
    return ["test"] if split == "test" else ["val", "test"]


def _query(item: EvalItem, image_text: str, task: str) -> RetrievalQuery:
    return RetrievalQuery(answer=item.answer, question=None if task == "qg" else item.question,
                          context=item.context, image_text=image_text, exclude_ids=[item.pid],
                          exclude_splits=exclude_splits(item.split))


def predict_copy(task: str, item: EvalItem, retriever, image_text: str) -> dict[str, Any]:
    """No model: the nearest answer-type-compatible exemplar's question, rationale or distractors."""
    found, _ = retriever.retrieve(_query(item, image_text, task), k=10)
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


def predict_graph(task: str, item: EvalItem, services, settings: dict[str, Any], image_text: str,
                  use_image: bool) -> dict[str, Any]:
    from coe.graphs import graph, nodes

    n = len(item.gold_distractors)
    state: dict[str, Any] = {
        "answer": item.answer, "context": item.context, "image_text": image_text,
        "image_path": str(item.image_path) if use_image and item.image_path else None,
        "question_given": None if task == "qg" else item.question, "n_distractors": n,
        "exclude_ids": [item.pid], "trace": []}
    config = {"configurable": {"services": services, "n_distractors": max(n, 1),
                               "exclude_splits": exclude_splits(item.split), **settings}}
    if task == "dg":
        try:
            out = graph.invoke(state, config=config)
        except ModelOutputError as exc:
            return {"distractors": None, "error": str(exc)}
        return {"distractors": out["distractors"], "rationale": out.get("rationale"),
                "repaired": out.get("repaired", []), "usage": _usage(out["trace"]),
                "attempts": out.get("attempts", 1)}
    steps = [nodes.describe_image, nodes.retrieve] + ([nodes.question] if task == "qg" else [])
    for step in steps:
        try:
            update = step(state, config)
        except ModelOutputError as exc:  # a question that failed loudly scores as invalid, the run goes on
            return {"question": None, "error": str(exc), "usage": _usage(state["trace"])}
        state["trace"] = state["trace"] + update.pop("trace", [])
        state.update(update)
    if task == "qg":
        return {"question": state["question"], "usage": _usage(state["trace"])}
    state["question"] = item.question
    try:
        update = nodes.rationale(state, {**config, "configurable": {**config["configurable"], "use_rationale": True}})
    except ModelOutputError as exc:
        return {"rationale": None, "error": str(exc)}
    return {"rationale": update["rationale"], "usage": _usage(state["trace"] + update["trace"])}


def _usage(trace: list[dict]) -> dict[str, int]:
    total = {"prompt_tokens": 0, "completion_tokens": 0}
    for t in trace:
        for k in total:
            total[k] += (t.get("usage") or {}).get(k, 0)
    return total


def predict(task: str, variant: str, item: EvalItem, services, image_text: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    settings = VARIANTS[variant]
    if settings is None:
        result = predict_copy(task, item, services.retriever, image_text)
    else:
        use_image = bool(getattr(services.llm, "supports_images", False))
        result = predict_graph(task, item, services, settings, image_text, use_image)
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result
