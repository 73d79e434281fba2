"""Graph nodes: each reads the state, does one CoE step and returns its update plus a trace entry."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig

from coe.agents.generation import ItemInput, generate_distractors, generate_question, generate_rationale
from coe.agents.candidates import candidate_pool
from coe.agents.validation import exemplar_options, fill_from_options, validate_distractors
from coe.errors import ModelOutputError
from coe.plugins.llm.protocol import ImageRef
from coe.retrieval.exemplars import Exemplar
from coe.retrieval.retriever import RetrievalQuery

from .services import services_from, settings_from
from .state import CoEState


def _item(state: CoEState) -> ItemInput:
    images = [ImageRef(path=Path(state["image_path"]))] if state.get("image_path") else []
    return ItemInput(answer=state["answer"], context=state.get("context", ""),
                     image_text=state.get("image_text", ""), question=state.get("question_given"),
                     images=images)


def _exemplars(state: CoEState, config: RunnableConfig | None = None) -> list[Exemplar]:
    """The exemplars shown in prompts: the top k of those retrieved (the rest only feed the pool)."""
    k = settings_from(config).k if config is not None else None
    return [Exemplar(**e) for e in state.get("exemplars", [])][:k]


def _pool(state: CoEState, config: RunnableConfig, n: int) -> list[str]:
    s = settings_from(config)
    if not s.use_pool:
        return []
    material = " ".join((state.get("context", ""), state.get("image_text", "")))
    pool = candidate_pool(state["answer"], [Exemplar(**e) for e in state.get("exemplars", [])], material,
                          question=state.get("question", ""), limit=max(12, 2 * n))
    return [c.text for c in pool]


def describe_image(state: CoEState, config: RunnableConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    path = state.get("image_path")
    if not path:  # a caller may bring its own image text (e.g. a dataset caption when the file is absent)
        return {"image_text": state.get("image_text", ""),
                "trace": [{"node": "describe_image", "seconds": 0.0, "skipped": "no image"}]}
    from coe.imageio import load_image

    reader = services_from(config).image_reader
    image = load_image(path)
    described = reader.describe(image, source_path=Path(path))
    text = described.as_prompt_text()
    return {"image_text": text,
            "trace": [{"node": "describe_image", "seconds": round(time.perf_counter() - t0, 3),
                       "reader": getattr(reader, "name", type(reader).__name__),
                       "output": described.model_dump(mode="json")}]}


def retrieve(state: CoEState, config: RunnableConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    s = settings_from(config)
    if not s.use_exemplars:
        return {"exemplars": [], "trace": [{"node": "retrieve", "seconds": 0.0, "skipped": "ablation: no exemplars"}]}
    retriever = services_from(config).retriever

    q = RetrievalQuery(answer=state["answer"], question=state.get("question_given"),
                       context=state.get("context", ""), image_text=state.get("image_text", ""),
                       subject=state.get("subject"), grade=state.get("grade"),
                       exclude_ids=state.get("exclude_ids", []), exclude_splits=s.exclude_splits,
                       image_path=state.get("image_path"))
    found, info = retriever.retrieve(q, k=max(s.k, s.pool_k if s.use_pool else 0))
    return {"exemplars": [e.model_dump() for e in found],
            "trace": [{"node": "retrieve", "seconds": round(time.perf_counter() - t0, 3), **info,
                       "exemplars": [{"id": e.id, "score": e.score, "signals": e.signals} for e in found]}]}


def question(state: CoEState, config: RunnableConfig) -> dict[str, Any]:
    given = state.get("question_given")
    if given:
        return {"question": given.strip(),
                "trace": [{"node": "question", "seconds": 0.0, "skipped": "question given by user"}]}
    s, llm = settings_from(config), services_from(config).llm
    value, trace = generate_question(llm, _item(state), _exemplars(state, config), mode=s.mode)
    return {"question": value, "model": llm.model_id, "trace": [{"node": "question", **trace}]}


def rationale(state: CoEState, config: RunnableConfig) -> dict[str, Any]:
    s, llm = settings_from(config), services_from(config).llm
    if not s.use_rationale:
        return {"rationale": None, "trace": [{"node": "rationale", "seconds": 0.0, "skipped": "ablation: no rationale"}]}
    value, trace = generate_rationale(llm, _item(state), state["question"], _exemplars(state, config), mode=s.mode)
    return {"rationale": value, "model": llm.model_id, "trace": [{"node": "rationale", **trace}]}


def distractors(state: CoEState, config: RunnableConfig) -> dict[str, Any]:
    s, llm = settings_from(config), services_from(config).llm
    n = state.get("n_distractors") or s.n_distractors
    attempt = state.get("attempts", 0) + 1
    pool = _pool(state, config, n)
    if s.choose_from_pool and s.pool_selection == "rank" and attempt == 1 and len(pool) >= n:
        # The pool's own ranking picks; the model writes distractors only when the pool falls short or
        # validation sends the step back.
        return {"candidate_distractors": pool[:n], "attempts": attempt,
                "trace": [{"node": "distractors", "attempt": attempt, "seconds": 0.0, "source": "pool ranking",
                           "candidates": pool, "parsed": pool[:n]}]}
    try:
        value, trace = generate_distractors(llm, _item(state), state["question"], state.get("rationale"),
                                            _exemplars(state, config), n, mode=s.mode,
                                            feedback=state.get("feedback", ""), candidates=pool,
                                            choose=s.choose_from_pool)
    except ModelOutputError as exc:
        # An unparsable reply counts as a failed attempt; validation decides on retry or repair.
        trace = {**getattr(exc, "trace", {}), "error": str(exc)}
        value = []
    return {"candidate_distractors": value, "attempts": attempt, "model": llm.model_id,
            "trace": [{"node": "distractors", "attempt": attempt, **trace}]}


def validate(state: CoEState, config: RunnableConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    s = settings_from(config)
    n = state.get("n_distractors") or s.n_distractors
    verdict = validate_distractors(state.get("candidate_distractors", []), state["answer"], n)
    entry: dict[str, Any] = {"node": "validate", "attempt": state.get("attempts", 0),
                             "valid": verdict.valid, "problems": verdict.problems}
    update: dict[str, Any] = {"valid": verdict.valid, "feedback": verdict.feedback()}
    if verdict.valid:
        update["distractors"] = verdict.kept
    elif state.get("attempts", 0) > s.max_retries:
        options = _pool(state, config, n) + exemplar_options([Exemplar(**e) for e in state.get("exemplars", [])])
        filled, added = fill_from_options(verdict.kept, state["answer"], n, options)
        final = validate_distractors(filled, state["answer"], n)
        entry.update({"repair": "filled from exemplars", "filled": added, "valid_after_repair": final.valid})
        if not final.valid:
            entry["seconds"] = round(time.perf_counter() - t0, 3)
            raise ModelOutputError(f"could not produce {n} valid distractors: {final.feedback()}")
        update.update({"valid": True, "distractors": final.kept, "repaired": added})
    entry["seconds"] = round(time.perf_counter() - t0, 3)
    update["trace"] = [entry]
    return update


def after_validate(state: CoEState) -> str:
    return "done" if state.get("valid") else "retry"
