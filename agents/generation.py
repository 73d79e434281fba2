"""The three CoE generation steps: question → rationale → distractors, each guided by exemplars; and the
misconception notes of the distractors. Each step's reply is a contract of ``contracts``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from coe.plugins.llm.protocol import ImageRef

from .contracts import QuestionReply, RationaleReply, Reply, check_mode, distractors_reply, enforceable, notes_reply
from .llm_call import PendingCall, run_call
from .prompting import numbered, render


class ItemInput(BaseModel):
    answer: str
    context: str = ""
    image_text: str = ""
    question: str | None = None
    images: list[ImageRef] = Field(default_factory=list)


def _prepare(
    stage: str,
    llm,
    item: ItemInput,
    exemplars: list,
    mode: str,
    contract: type[Reply],
    max_tokens: int,
    repeat_penalty: float = 1.0,
    context: dict[str, Any] | None = None,
    **fields: str,
) -> PendingCall:
    images = item.images if getattr(llm, "supports_images", False) else []
    messages, prompt_id = render(
        stage,
        check_mode(mode),
        exemplars=exemplars,
        context=item.context,
        image_text=item.image_text,
        answer=item.answer,
        images=images,
        reply_format=contract.reply_format(mode),
        **fields,
    )
    return PendingCall(
        messages,
        contract=contract,
        mode=mode,
        context=context,
        max_tokens=max_tokens,
        what=stage,
        repeat_penalty=repeat_penalty,
        extra={"prompt_id": prompt_id},
    )


# The request halves: each returns a PendingCall (prompt rendered, contract attached) that ``run_call``
# drives; benchmarks and batch runners send many items' requests (``call.request()``) in one batch.


def question_call(
    llm, item: ItemInput, exemplars: list, *, mode: str = "json", max_tokens: int = 80, feedback: str = ""
) -> PendingCall:
    feedback_line = f"A previous question was rejected: {feedback}. Write a better one.\n" if feedback else ""
    # the answer goes to the contract's validators: a question that only restates it is refused
    return _prepare(
        "question",
        llm,
        item,
        exemplars,
        mode,
        QuestionReply,
        max_tokens,
        context={"answer": item.answer},
        feedback=feedback_line,
    )


def rationale_call(
    llm, item: ItemInput, question: str, exemplars: list, *, mode: str = "json", max_tokens: int = 160
) -> PendingCall:
    return _prepare(
        "rationale", llm, item, exemplars, mode, RationaleReply, max_tokens, repeat_penalty=1.15, question=question
    )


def distractors_call(
    llm,
    item: ItemInput,
    question: str,
    rationale: str | None,
    exemplars: list,
    n: int,
    *,
    mode: str = "json",
    feedback: str = "",
    candidates: list[str] | None = None,
    choose: bool = False,
    max_tokens: int = 120,
) -> PendingCall:
    """``candidates`` are offered in the prompt; with ``choose`` (and enough of them) the JSON schema
    only admits those strings, so the model chooses instead of inventing."""
    rationale_line = f"Rationale of the new item: {rationale}\n" if rationale else ""
    feedback_line = f"Your previous distractors were rejected: {feedback}. Fix these problems.\n" if feedback else ""
    candidates = list(candidates or [])
    choices = enforceable(candidates)
    choose = choose and len(choices) >= n and mode == "json"
    candidates_line = ""
    if candidates:
        verb = f"Choose exactly {n} of them" if choose else "Prefer these where they fit"
        listed = " ".join(f"({i}) {c}" for i, c in enumerate(candidates, 1))
        candidates_line = (
            f"Candidate options from similar items, most likely first: {listed}\n"
            f"{verb}, favouring options that appear in the new item's material.\n"
        )
    call = _prepare(
        "distractors",
        llm,
        item,
        exemplars,
        mode,
        distractors_reply(n, choices if choose else None),
        max_tokens,
        question=question,
        rationale_line=rationale_line,
        candidates_line=candidates_line,
        feedback=feedback_line,
        n=str(n),
    )
    call.extra.update({"candidates": candidates, "constrained_to_candidates": choose})
    return call


def notes_call(
    llm, item: ItemInput, question: str, distractors: list[str], exemplars: list, *, max_tokens: int = 60
) -> PendingCall:
    """One short misconception note per distractor (why a student would pick it), in the given order."""
    n = len(distractors)
    return _prepare(
        "notes",
        llm,
        item,
        exemplars,
        "json",
        notes_reply(n),
        max_tokens * max(n, 1),
        question=question,
        options=numbered(distractors),
        n=str(n),
    )


def generate_question(
    llm, item: ItemInput, exemplars: list, *, mode: str = "json", max_tokens: int = 80, feedback: str = ""
) -> tuple[str, dict[str, Any]]:
    return run_call(llm, question_call(llm, item, exemplars, mode=mode, max_tokens=max_tokens, feedback=feedback))


def sample_questions(
    llm,
    item: ItemInput,
    exemplars: list,
    k: int,
    *,
    seed: int = 0,
    mode: str = "json",
    feedback: str = "",
    temperature: float = 0.8,
) -> tuple[list[str], list[dict[str, Any]]]:
    """``k`` sampled questions (seeded), for generate-several-keep-best; unparsable samples are dropped."""
    out, traces = [], []
    for i in range(k):
        call = question_call(llm, item, exemplars, mode=mode, feedback=feedback)
        call.attempts = 1
        gen = llm.generate(call.request().model_copy(update={"temperature": temperature, "seed": seed * 1000 + i + 1}))
        if call.feed(gen, gen.seconds):
            out.append(call.value)
        traces.append({"raw": call.trace["raw"], "usage": call.trace["usage"], "seconds": round(gen.seconds, 3)})
    return out, traces


def generate_rationale(
    llm, item: ItemInput, question: str, exemplars: list, *, mode: str = "json", max_tokens: int = 160
) -> tuple[str, dict[str, Any]]:
    return run_call(llm, rationale_call(llm, item, question, exemplars, mode=mode, max_tokens=max_tokens))


def generate_distractors(
    llm,
    item: ItemInput,
    question: str,
    rationale: str | None,
    exemplars: list,
    n: int,
    *,
    mode: str = "json",
    feedback: str = "",
    candidates: list[str] | None = None,
    choose: bool = False,
    max_tokens: int = 120,
) -> tuple[list, dict[str, Any]]:
    return run_call(
        llm,
        distractors_call(
            llm,
            item,
            question,
            rationale,
            exemplars,
            n,
            mode=mode,
            feedback=feedback,
            candidates=candidates,
            choose=choose,
            max_tokens=max_tokens,
        ),
    )
