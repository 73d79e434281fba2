"""The contract every LLM backend implements: messages (text + images) in, text or schema-bound JSON out."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Generator
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class ImageRef(BaseModel):
    """An image attached to a message, by path or as encoded bytes (PNG/JPEG)."""

    model_config = ConfigDict(frozen=True)

    path: Path | None = None
    data: bytes | None = None
    mime: str = "image/png"

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is None:
            raise ValueError("ImageRef needs a path or data")
        return Path(self.path).read_bytes()

    def data_uri(self) -> str:
        return f"data:{self.mime};base64," + base64.b64encode(self.read_bytes()).decode("ascii")

    @classmethod
    def from_pil(cls, image) -> "ImageRef":
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return cls(data=buf.getvalue(), mime="image/png")


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str
    images: list[ImageRef] = Field(default_factory=list)


class GenerationRequest(BaseModel):
    messages: list[Message]
    json_schema: dict[str, Any] | None = None
    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = 0
    repeat_penalty: float = 1.0  # > 1 discourages loops in long free text; backends may ignore it
    stop: list[str] = Field(default_factory=list)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # of prompt_tokens, those read from the backend's prompt (KV) cache instead of evaluated again
    prompt_tokens_reused: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Generation(BaseModel):
    text: str
    data: Any = None  # parsed JSON when the request had a json_schema and the text parsed
    usage: Usage = Field(default_factory=Usage)
    seconds: float = 0.0
    model: str = ""
    finish_reason: str | None = None


class OptionScoreRequest(BaseModel):
    """Score a closed set of replies: how likely the model's reply starts with each label.

    ``labels`` are short, distinct strings that each tokenize to one token after the assistant turn starts
    (option letters "A", "B", …, or "Yes" / "No"); the prompt itself asks for a reply that is one label."""

    messages: list[Message]
    labels: list[str]


class OptionScores(BaseModel):
    labels: list[str]
    probs: list[float]  # over ``labels``, summing to 1
    logprobs: list[float | None]  # the model's log-probability of each label as the first reply token;
    # None where the backend did not report it (outside its top-k)
    method: Literal["logprobs", "choice"]  # "choice": one schema-constrained greedy reply, one-hot
    model: str = ""
    usage: Usage = Field(default_factory=Usage)
    seconds: float = 0.0

    def prob(self, label: str) -> float:
        return self.probs[self.labels.index(label)]


@runtime_checkable
class LLMPlugin(Protocol):
    """A text(+vision) generator (``coe.llm``). ``supports_images`` False means callers must describe images
    as text. This is all a third party's backend needs; two capabilities are optional, each a Protocol of its
    own: ``stream(request)`` (``StreamingLLMPlugin``; callers fall back to one chunk of ``generate``) and
    ``score_options(request)`` (``OptionScoringLLM``; callers fall back to ``choice_scores``). Every bundled
    backend has both."""

    name: str
    model_id: str
    supports_images: bool
    supports_json_schema: bool

    def generate(self, request: GenerationRequest) -> Generation: ...

    def generate_batch(self, requests: list[GenerationRequest]) -> list[Generation]: ...


@runtime_checkable
class CheckedLLM(Protocol):
    """A plugin that can tell before its first call whether its backend answers (the OpenAI-compatible
    plugin's GET /models); ``check()`` raises a one-line ``ConfigError`` naming what it could not reach."""

    def check(self) -> None: ...


@runtime_checkable
class OptionScoringLLM(Protocol):
    """A plugin that scores a closed set of replies itself; callers go through ``score_options`` below, which
    falls back to ``choice_scores`` for any other plugin."""

    def score_options(self, request: OptionScoreRequest) -> OptionScores:
        """Probabilities over ``request.labels`` (log-probabilities where the backend has them, else
        ``choice_scores``)."""
        ...


@runtime_checkable
class StreamingLLMPlugin(Protocol):
    """A plugin that streams: ``stream(request)`` yields text chunks (their concatenation is the reply) and,
    as a generator, returns the final ``Generation`` (full text, usage, finish reason) when it ends.
    Kept apart from ``LLMPlugin`` because most backends do not stream and ``isinstance`` checks them."""

    def stream(self, request: GenerationRequest) -> Generator[str, None, Generation]: ...


def label_probs(logprobs: list[float]) -> list[float]:
    """The distribution over the labels alone: a softmax of their log-probabilities (shifted by the
    largest, so very negative values do not underflow to an all-zero sum)."""
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    total = sum(weights)
    return [w / total for w in weights]


def top_logprob_scores(first: dict, labels: list[str]) -> tuple[list[float | None], list[float]]:
    """(logprobs, probs) of the labels from an OpenAI-shaped first-token entry (``logprobs.content[0]``:
    ``token``, ``logprob``, ``top_logprobs``). Token strings are stripped; a label outside the top-k gets
    logprob None and, for ``probs``, the smallest listed log-probability. Malformed entries raise
    KeyError/TypeError/ValueError for the caller's fallback."""
    seen: dict[str, float] = {}
    for entry in [*(first.get("top_logprobs") or []), first]:
        token, logprob = str(entry["token"]).strip(), float(entry["logprob"])
        seen[token] = max(logprob, seen.get(token, logprob))
    logprobs = [seen.get(label.strip()) for label in labels]
    floor = min(seen.values())
    return logprobs, label_probs([floor if lp is None else lp for lp in logprobs])


class StreamTally:
    """What ``chat_deltas`` saw besides the text: the reply's parts, finish reason, usage and model."""

    def __init__(self, model: str = "") -> None:
        self.parts: list[str] = []
        self.finish_reason: str | None = None
        self.usage: dict = {}
        self.model = model

    @property
    def text(self) -> str:
        return "".join(self.parts)


class Streamed:
    """The text pieces of a plugin's ``stream(request)`` for a ``for`` loop; after the loop, ``generation``
    is the ``Generation`` the stream returned."""

    def __init__(self, stream: Generator[str, None, Generation]) -> None:
        self._stream = stream
        self.generation: Generation | None = None

    def __iter__(self) -> Generator[str, None, None]:
        self.generation = yield from self._stream


def chat_deltas(events, tally: StreamTally):
    """The text pieces of OpenAI-shaped ``chat.completion.chunk`` events (llama.cpp's stream has the same
    shape), recording the rest in ``tally``."""
    for event in events:
        tally.usage = event.get("usage") or tally.usage
        tally.model = event.get("model") or tally.model
        for choice in event.get("choices") or []:
            tally.finish_reason = choice.get("finish_reason") or tally.finish_reason
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                tally.parts.append(piece)
                yield piece


def label_token_ids(tokenize, labels: list[str]) -> list[int]:
    """Each label's first token id (``tokenize(text) -> ids``, no special tokens): a label of several tokens
    is scored by its first, as the reply's first token; labels that start alike cannot be told apart."""
    from coe.errors import InputError

    ids = []
    for label in labels:
        tokens = tokenize(label)
        if not tokens:
            raise InputError(f"option label {label!r} has no tokens")
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise InputError(f"option labels {labels} do not start with distinct tokens")
    return ids


def score_options(llm: LLMPlugin, request: OptionScoreRequest) -> OptionScores:
    """Any plugin's option scores: its own (``OptionScoringLLM``) when it has them, else a constrained choice."""
    return llm.score_options(request) if isinstance(llm, OptionScoringLLM) else choice_scores(llm, request)


def choice_scores(llm: LLMPlugin, request: OptionScoreRequest) -> OptionScores:
    """Option scores without log-probabilities: one greedy reply constrained to the labels by a JSON
    schema; the chosen label gets probability 1 (an unparsable reply spreads it evenly)."""
    schema = {
        "type": "object",
        "properties": {"choice": {"type": "string", "enum": list(request.labels)}},
        "required": ["choice"],
    }
    messages = list(request.messages)
    last = messages[-1]
    messages[-1] = last.model_copy(update={"content": last.content + '\nReply with JSON: {"choice": "<label>"}'})
    gen = llm.generate(GenerationRequest(messages=messages, json_schema=schema, max_tokens=16, temperature=0.0))
    chosen = gen.data.get("choice") if isinstance(gen.data, dict) else None
    n = len(request.labels)
    probs = [1.0 if label == chosen else 0.0 for label in request.labels] if chosen in request.labels else [1 / n] * n
    return OptionScores(
        labels=list(request.labels),
        probs=probs,
        logprobs=[None] * n,
        method="choice",
        model=gen.model,
        usage=gen.usage,
        seconds=gen.seconds,
    )


class SequentialBatchMixin:
    """Default batch call for backends without native batching: one request after another."""

    def generate_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        return [self.generate(r) for r in requests]  # type: ignore[attr-defined]
