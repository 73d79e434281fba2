"""A scripted backend for unit tests: replies come from a list or a function, never from a model.

``score_options`` takes the next reply too: ``{"scores": {"A": 0.7, "B": 0.3}}`` (labels left out get 0;
the rest is normalized to sum 1) gives log-probability scores; a reply that is one of the labels gives
that label probability 1, as a constrained choice would. A function reply is called with the
``OptionScoreRequest``."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from coe.plugins.llm.protocol import (Generation, GenerationRequest, OptionScoreRequest, OptionScores, SequentialBatchMixin,
                       Usage)
from coe.plugins.llm.reply import parse_json_text

Reply = str | dict | list | Callable[[GenerationRequest | OptionScoreRequest], Any]


class ScriptedLLM(SequentialBatchMixin):
    name = "scripted"
    supports_images = True
    supports_json_schema = True

    def __init__(self, replies: list[Reply] | Callable[[GenerationRequest], Any] | None = None,
                 model_id: str = "scripted") -> None:
        self._replies = replies if replies is not None else []
        self.model_id = model_id
        self.requests: list[GenerationRequest] = []
        self.score_requests: list[OptionScoreRequest] = []

    def _next(self, request: GenerationRequest | OptionScoreRequest) -> Any:
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

    def score_options(self, request: OptionScoreRequest) -> OptionScores:
        self.score_requests.append(request)
        reply = self._next(request)
        labels = list(request.labels)
        if isinstance(reply, str) and reply in labels:
            probs = [float(label == reply) for label in labels]
            return OptionScores(labels=labels, probs=probs, logprobs=[None] * len(labels), method="choice",
                                model=self.model_id)
        scores = reply.get("scores") if isinstance(reply, dict) else None
        if (not isinstance(scores, dict) or set(scores) - set(labels) or min(scores.values(), default=0) < 0
                or sum(scores.values()) <= 0):
            raise RuntimeError(f"ScriptedLLM needs a label of {labels} or {{'scores': {{label: weight >= 0}}}} "
                               f"with a positive total to score options, got {reply!r}")
        total = sum(scores.values())
        probs = [scores.get(label, 0.0) / total for label in labels]
        return OptionScores(labels=labels, probs=probs, logprobs=[math.log(p) if p > 0 else None for p in probs],
                            method="logprobs", model=self.model_id)
