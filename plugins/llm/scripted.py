"""A scripted backend for unit tests: replies come from a list or a function, never from a model."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .protocol import Generation, GenerationRequest, SequentialBatchMixin, Usage, parse_json_text

Reply = str | dict | list | Callable[[GenerationRequest], Any]


class ScriptedLLM(SequentialBatchMixin):
    name = "scripted"
    supports_images = True
    supports_json_schema = True

    def __init__(self, replies: list[Reply] | Callable[[GenerationRequest], Any] | None = None,
                 model_id: str = "scripted") -> None:
        self._replies = replies if replies is not None else []
        self.model_id = model_id
        self.requests: list[GenerationRequest] = []

    def _next(self, request: GenerationRequest) -> Any:
        if callable(self._replies):
            return self._replies(request)
        if not self._replies:
            raise RuntimeError("ScriptedLLM ran out of scripted replies")
        reply = self._replies.pop(0)
        return reply(request) if callable(reply) else reply

    def generate(self, request: GenerationRequest) -> Generation:
        self.requests.append(request)
        reply = self._next(request)
        text = reply if isinstance(reply, str) else json.dumps(reply)
        data = None
        if request.json_schema is not None:
            try:
                data = parse_json_text(text)
            except ValueError:
                data = None
        prompt_tokens = sum(len(m.content.split()) for m in request.messages)
        return Generation(text=text, data=data, model=self.model_id,
                          usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(text.split())))
