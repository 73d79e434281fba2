"""The three CoE generation steps: question → rationale → distractors, each guided by exemplars."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from coe.plugins.llm.protocol import ImageRef

from .llm_call import call_and_parse
from .parsing import drop_repeated_sentences, list_field, text_field
from .prompting import render

MODES = ("json", "coe")


class ItemInput(BaseModel):
    answer: str
    context: str = ""
    image_text: str = ""
    question: str | None = None
    images: list[ImageRef] = Field(default_factory=list)


def _string_schema(key: str) -> dict:
    # Length bounds are checked after parsing: llama.cpp grammars blow up on large repetition counts.
    return {"type": "object", "properties": {key: {"type": "string"}}, "required": [key]}


def distractor_schema(n: int) -> dict:
    return {"type": "object",
            "properties": {"distractors": {"type": "array", "minItems": n, "maxItems": n,
                                           "items": {"type": "string"}}},
            "required": ["distractors"]}


def _run(stage: str, llm, item: ItemInput, exemplars: list, mode: str, schema: dict, parse, max_tokens: int,
         repeat_penalty: float = 1.0, **fields: str) -> tuple[Any, dict[str, Any]]:
    if mode not in MODES:
        raise ValueError(f"unknown output mode {mode!r}; use one of {MODES}")
    images = item.images if getattr(llm, "supports_images", False) else []
    messages, prompt_id = render(stage, mode, exemplars=exemplars, context=item.context,
                                 image_text=item.image_text, answer=item.answer, images=images, **fields)
    value, trace = call_and_parse(llm, messages, schema=schema if mode == "json" else None,
                                  max_tokens=max_tokens, what=stage, parse=parse,
                                  repeat_penalty=repeat_penalty)
    trace["prompt_id"] = prompt_id
    return value, trace


def generate_question(llm, item: ItemInput, exemplars: list, *, mode: str = "json",
                      max_tokens: int = 80) -> tuple[str, dict[str, Any]]:
    return _run("question", llm, item, exemplars, mode, _string_schema("question"),
                lambda d, t: text_field(d, t, "question", mode, "Question", 400), max_tokens)


def generate_rationale(llm, item: ItemInput, question: str, exemplars: list, *, mode: str = "json",
                       max_tokens: int = 160) -> tuple[str, dict[str, Any]]:
    return _run("rationale", llm, item, exemplars, mode, _string_schema("rationale"),
                lambda d, t: drop_repeated_sentences(
                    text_field(d, t, "rationale", mode, "Rationale", 2000, salvage=True)),
                max_tokens, repeat_penalty=1.15, question=question)


def generate_distractors(llm, item: ItemInput, question: str, rationale: str | None, exemplars: list,
                         n: int, *, mode: str = "json", feedback: str = "",
                         max_tokens: int = 120) -> tuple[list, dict[str, Any]]:
    rationale_line = f"Rationale of the new item: {rationale}\n" if rationale else ""
    feedback_line = (f"Your previous distractors were rejected: {feedback}. Fix these problems.\n"
                     if feedback else "")
    return _run("distractors", llm, item, exemplars, mode, distractor_schema(n),
                lambda d, t: list_field(d, t, "distractors", mode), max_tokens,
                question=question, rationale_line=rationale_line, feedback=feedback_line, n=str(n))
