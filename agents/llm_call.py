"""One model call with its trace record; parse failures are retried, then reported loudly."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from coe.errors import ModelOutputError
from coe.plugins.llm.protocol import GenerationRequest, Message


def call_and_parse(llm, messages: list[Message], *, parse: Callable[[Any, str], Any],
                   schema: dict | None, max_tokens: int, attempts: int = 2, repeat_penalty: float = 1.0,
                   what: str = "output") -> tuple[Any, dict]:
    """Call the model and parse its reply; ``parse(data, text)`` raises ValueError when unusable.

    Returns the parsed value and a trace fragment (prompt, raw replies, usage, seconds)."""
    trace: dict[str, Any] = {"messages": [{"role": m.role, "content": m.content, "images": len(m.images)}
                                          for m in messages],
                             "raw": [], "usage": {"prompt_tokens": 0, "completion_tokens": 0}}
    start = time.perf_counter()
    last_error = ""
    for attempt in range(attempts):
        gen = llm.generate(GenerationRequest(messages=messages, json_schema=schema, max_tokens=max_tokens,
                                             temperature=0.0 if attempt == 0 else 0.7, seed=attempt,
                                             repeat_penalty=repeat_penalty))
        trace["raw"].append(gen.text)
        trace["usage"]["prompt_tokens"] += gen.usage.prompt_tokens
        trace["usage"]["completion_tokens"] += gen.usage.completion_tokens
        trace["model"] = gen.model
        try:
            value = parse(gen.data, gen.text)
            trace["parsed"] = value
            trace["seconds"] = round(time.perf_counter() - start, 3)
            trace["attempts"] = attempt + 1
            return value, trace
        except (ValueError, KeyError, TypeError) as exc:
            last_error = str(exc)
            trace.setdefault("parse_errors", []).append(last_error)
    trace["seconds"] = round(time.perf_counter() - start, 3)
    err = ModelOutputError(f"model {what} unusable after {attempts} attempts: {last_error}")
    err.trace = trace
    raise err
