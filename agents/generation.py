"""The three CoE generation steps: question → rationale → distractors, each guided by exemplars."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from coe.plugins.llm.protocol import ImageRef
from coe.text import one_line

from .llm_call import PendingCall, run_call
from .parsing import drop_repeated_sentences, list_field, text_field
from .prompting import render
from .validation import normalize

MODES = ("json", "coe")
_UNSAFE_ENUM = re.compile(r'["\\\x00-\x1f]')


class ItemInput(BaseModel):
    answer: str
    context: str = ""
    image_text: str = ""
    question: str | None = None
    images: list[ImageRef] = Field(default_factory=list)


def _string_schema(key: str) -> dict:
    # Length bounds are checked after parsing: llama.cpp grammars blow up on large repetition counts.
    return {"type": "object", "properties": {key: {"type": "string"}}, "required": [key]}


def distractor_schema(n: int, choices: list[str] | None = None) -> dict:
    """``choices`` restricts every distractor to that list (the model chooses instead of inventing)."""
    items = {"type": "string", "enum": list(choices)} if choices else {"type": "string"}
    return {"type": "object",
            "properties": {"distractors": {"type": "array", "minItems": n, "maxItems": n, "items": items}},
            "required": ["distractors"]}


def _prepare(stage: str, llm, item: ItemInput, exemplars: list, mode: str, schema: dict, parse, max_tokens: int,
             repeat_penalty: float = 1.0, **fields: str) -> PendingCall:
    if mode not in MODES:
        raise ValueError(f"unknown output mode {mode!r}; use one of {MODES}")
    images = item.images if getattr(llm, "supports_images", False) else []
    messages, prompt_id = render(stage, mode, exemplars=exemplars, context=item.context,
                                 image_text=item.image_text, answer=item.answer, images=images, **fields)
    return PendingCall(messages, parse=parse, schema=schema if mode == "json" else None, max_tokens=max_tokens,
                       what=stage, repeat_penalty=repeat_penalty, extra={"prompt_id": prompt_id})


# The request halves: each returns a PendingCall (prompt rendered, parser attached) that ``run_call``
# drives; benchmarks and batch runners send many items' requests (``call.request()``) in one batch.

def question_call(llm, item: ItemInput, exemplars: list, *, mode: str = "json", max_tokens: int = 80,
                  feedback: str = "") -> PendingCall:
    def parse(d, t):
        question = text_field(d, t, "question", mode, "Question", 400)
        if normalize(question) == normalize(item.answer):
            raise ValueError("the question only restates the answer")
        return question
    feedback_line = f"A previous question was rejected: {feedback}. Write a better one.\n" if feedback else ""
    return _prepare("question", llm, item, exemplars, mode, _string_schema("question"), parse, max_tokens,
                    feedback=feedback_line)


def rationale_call(llm, item: ItemInput, question: str, exemplars: list, *, mode: str = "json",
                   max_tokens: int = 160) -> PendingCall:
    return _prepare("rationale", llm, item, exemplars, mode, _string_schema("rationale"),
                    lambda d, t: drop_repeated_sentences(
                        text_field(d, t, "rationale", mode, "Rationale", 2000, salvage=True)),
                    max_tokens, repeat_penalty=1.15, question=question)


def distractors_call(llm, item: ItemInput, question: str, rationale: str | None, exemplars: list, n: int, *,
                     mode: str = "json", feedback: str = "", candidates: list[str] | None = None,
                     choose: bool = False, max_tokens: int = 120) -> PendingCall:
    """``candidates`` are offered in the prompt; with ``choose`` (and enough of them) the JSON schema
    only admits those strings, so the model chooses instead of inventing."""
    rationale_line = f"Rationale of the new item: {rationale}\n" if rationale else ""
    feedback_line = (f"Your previous distractors were rejected: {feedback}. Fix these problems.\n"
                     if feedback else "")
    candidates = list(candidates or [])
    # llama.cpp's schema-to-grammar conversion breaks (and can crash the process) on enum strings with
    # quotes, backslashes or control characters, so only plain strings can be enforced by the schema.
    enforceable = [c for c in candidates if not _UNSAFE_ENUM.search(c)]
    choose = choose and len(enforceable) >= n and mode == "json"
    candidates_line = ""
    if candidates:
        verb = f"Choose exactly {n} of them" if choose else "Prefer these where they fit"
        listed = " ".join(f"({i}) {c}" for i, c in enumerate(candidates, 1))
        candidates_line = (f"Candidate options from similar items, most likely first: {listed}\n"
                           f"{verb}, favouring options that appear in the new item's material.\n")
    call = _prepare("distractors", llm, item, exemplars, mode, distractor_schema(n, enforceable if choose else None),
                    lambda d, t: list_field(d, t, "distractors", mode), max_tokens, question=question,
                    rationale_line=rationale_line, candidates_line=candidates_line, feedback=feedback_line,
                    n=str(n))
    call.extra.update({"candidates": candidates, "constrained_to_candidates": choose})
    return call


def generate_question(llm, item: ItemInput, exemplars: list, *, mode: str = "json", max_tokens: int = 80,
                      feedback: str = "") -> tuple[str, dict[str, Any]]:
    return run_call(llm, question_call(llm, item, exemplars, mode=mode, max_tokens=max_tokens, feedback=feedback))


def sample_questions(llm, item: ItemInput, exemplars: list, k: int, *, seed: int = 0, mode: str = "json",
                     feedback: str = "", temperature: float = 0.8) -> tuple[list[str], list[dict[str, Any]]]:
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


def notes_call(llm, item: ItemInput, question: str, distractors: list[str], exemplars: list, *,
               max_tokens: int = 60) -> PendingCall:
    """One short misconception note per distractor (why a student would pick it), in the given order."""
    n = len(distractors)

    def parse(d, t):
        notes = list_field(d, t, "notes", "json")
        if len(notes) != n or not all(isinstance(x, str) and x.strip() for x in notes):
            raise ValueError(f"expected {n} notes")
        from .validation import normalize
        if len({normalize(x) for x in notes}) < n:
            # one sentence copied for every option explains none of them (small models do this)
            raise ValueError("the notes repeat each other; each wrong option needs its own")
        return [one_line(x)[:300] for x in notes]
    schema = {"type": "object", "properties": {"notes": {"type": "array", "minItems": n, "maxItems": n,
                                                         "items": {"type": "string"}}}, "required": ["notes"]}
    from .prompting import numbered
    return _prepare("notes", llm, item, exemplars, "json", schema, parse, max_tokens * max(n, 1),
                    question=question, options=numbered(distractors), n=str(n))


def generate_rationale(llm, item: ItemInput, question: str, exemplars: list, *, mode: str = "json",
                       max_tokens: int = 160) -> tuple[str, dict[str, Any]]:
    return run_call(llm, rationale_call(llm, item, question, exemplars, mode=mode, max_tokens=max_tokens))


def generate_distractors(llm, item: ItemInput, question: str, rationale: str | None, exemplars: list,
                         n: int, *, mode: str = "json", feedback: str = "", candidates: list[str] | None = None,
                         choose: bool = False, max_tokens: int = 120) -> tuple[list, dict[str, Any]]:
    return run_call(llm, distractors_call(llm, item, question, rationale, exemplars, n, mode=mode,
                                          feedback=feedback, candidates=candidates, choose=choose,
                                          max_tokens=max_tokens))
