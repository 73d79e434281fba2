"""The main job as a function: checked inputs in, a validated MCQ item (with exemplars and trace) out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from coe.errors import InputError
from coe.limits import MAX_ANSWER_CHARS, MAX_CONTEXT_CHARS, MAX_DISTRACTORS, MAX_QUESTION_CHARS


class MCQItem(BaseModel):
    question: str
    answer: str
    distractors: list[str]
    rationale: str | None
    exemplars: list[dict[str, Any]] = Field(default_factory=list)
    model: str = ""
    image: str | None = None
    repaired: list[str] = Field(default_factory=list)
    distractor_notes: list[str] = Field(default_factory=list)
    status: Literal["verified", "unconfirmed", "flagged", "unverified"] = "unverified"  # unverified: off
    reasons: list[str] = Field(default_factory=list)
    difficulty: Literal["easy", "medium", "hard"] | None = None
    verification: dict[str, Any] = Field(default_factory=dict)
    # what the reviewer must check when no model could confirm the key ("Check in the picture: ...")
    check: str | None = None
    seconds: float = 0.0
    trace: list[dict[str, Any]] = Field(default_factory=list)
    # provenance of a material-grounded item: material, file, page/slide/section, passage and figure
    source: dict[str, Any] | None = None


def check_inputs(
    *,
    image: str | None,
    context: str,
    answer: str,
    question: str | None,
    n_distractors: int,
    count_name: str = "--n-distractors",
) -> dict[str, Any]:
    """The item's inputs checked and cleaned; ``count_name`` is how the caller's user names the distractor
    count in the error (a manifest's column, the CLI's option)."""
    from coe.imageio import check_text, load_image

    answer = check_text(answer, name="answer", max_chars=MAX_ANSWER_CHARS).strip()
    if not answer:
        raise InputError("the answer is empty")
    context = check_text(context or "", name="context", max_chars=MAX_CONTEXT_CHARS).strip()
    if question is not None:
        question = check_text(question, name="question", max_chars=MAX_QUESTION_CHARS).strip() or None
    if not 1 <= n_distractors <= MAX_DISTRACTORS:
        raise InputError(f"{count_name} must be between 1 and {MAX_DISTRACTORS}, not {n_distractors}")
    image_path = None
    if image is not None:
        load_image(image)  # fail fast on missing, corrupt or oversized images, before any model loads
        image_path = str(Path(image).resolve())
    return {
        "answer": answer,
        "context": context,
        "question_given": question,
        "image_path": image_path,
        "n_distractors": n_distractors,
    }


def generate_item(
    *,
    image: str | None,
    answer: str,
    context: str = "",
    question: str | None = None,
    n_distractors: int = 3,
    subject: str | None = None,
    grade: str | None = None,
    services=None,
    model: str | None = None,
    stream=None,
    **settings: Any,
) -> MCQItem:
    """Run the graph once. ``settings`` are ``GraphSettings`` fields, checked before any model loads (an unknown
    or ill-typed one is an ``InputError``). ``stream(node, update)`` is called after each node finishes."""
    from coe.graphs import graph
    from coe.graphs.services import default_services
    from coe.graphs.settings import check_settings

    resolved = check_settings({**settings, "n_distractors": n_distractors})

    state = check_inputs(image=image, context=context, answer=answer, question=question, n_distractors=n_distractors)
    state.update({"subject": subject, "grade": grade})
    services = services or default_services(model)
    config = {"configurable": resolved.model_dump(exclude_unset=True)}
    t0 = time.perf_counter()
    final: dict[str, Any] = dict(state)
    for chunk in graph.stream(state, config=config, context=services, stream_mode="updates"):
        for node, update in chunk.items():
            if not update:
                continue
            trace = update.get("trace", [])
            final.update({k: v for k, v in update.items() if k != "trace"})
            final.setdefault("trace", []).extend(trace)
            if stream:
                stream(node, update)
    return mcq_from_output(
        final,
        k=resolved.k,
        image=state["image_path"],
        model=getattr(services.llm, "model_id", ""),
        seconds=time.perf_counter() - t0,
    )


def mcq_from_output(
    out: dict[str, Any], *, k: int, image: str | None, model: str = "", seconds: float = 0.0
) -> MCQItem:
    """The item a graph run wrote (its output state), with the first ``k`` exemplars marked as shown."""
    exemplars = [
        {
            "id": e["id"],
            "bank": e.get("bank", ""),
            "score": e["score"],
            "question": e["question"],
            "answer": e["answer"],
            "distractors": e.get("distractors", []),
            "signals": e.get("signals", {}),
            "in_prompt": i < k,
        }
        for i, e in enumerate(out.get("exemplars", []))
    ]
    return MCQItem(
        question=out["question"],
        answer=out["answer"],
        distractors=out["distractors"],
        rationale=out.get("rationale"),
        exemplars=exemplars,
        model=out.get("model") or model,
        image=image,
        repaired=out.get("repaired", []),
        distractor_notes=out.get("distractor_notes", []),
        status=out.get("status", "unverified"),
        reasons=out.get("reasons", []),
        difficulty=out.get("difficulty"),
        verification=out.get("verification", {}),
        check=(out.get("verification") or {}).get("check") if out.get("status") == "unconfirmed" else None,
        seconds=round(seconds, 3),
        trace=out.get("trace", []),
    )
