"""OpenAI-compatible chat server backend: vLLM, SGLang, llama.cpp's servers, Ollama, or a hosted API.

Talks to ``{base_url}/chat/completions`` through the official ``openai`` SDK (``openai_client``: retries,
``Retry-After``, streaming, errors as one line); the parameters it sends are built in ``openai_request``.

Structured output (``json_mode``):

* ``"json_schema"`` sends the OpenAI form ``{"type": "json_schema", "json_schema": {"name", "schema",
  "strict": true}}`` (vLLM, SGLang, llama.cpp's C++ ``llama-server``, Ollama, OpenAI).
* ``"json_object"`` sends ``{"type": "json_object", "schema": ...}``: the form llama-cpp-python's
  ``python -m llama_cpp.server`` understands (it turns the schema into a grammar; it rejects
  ``json_schema``); servers that ignore ``schema`` still return some JSON object.
* ``"none"`` sends no ``response_format``; the schema is appended to the last user message instead.
* ``"auto"`` (default) starts with ``json_schema`` and, when the server rejects the request naming
  ``response_format``, switches to ``json_object`` once and remembers the switch for this instance.

The reply text is always parsed with ``parse_json_text`` into ``Generation.data`` (``None`` when it
does not parse); schema conformance beyond that is checked by the callers, as for every backend.

Option scoring asks for one token with ``logprobs`` and the ``top_logprobs`` (20, the OpenAI maximum) of
that first position. A label matches a listed token whose text, stripped of surrounding whitespace, is
the label (the best such token when several are listed). A label outside the top 20 gets ``None`` as its
log-probability and, for ``probs``, the lowest log-probability listed: an upper bound on its own, so it
keeps a small share rather than none. A server that sends no logprobs (or rejects the request naming
them) is scored by ``choice_scores`` from then on, for this instance.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from coe.errors import ConfigError, InputError
from coe.settings import settings

from .openai_request import API_KEY_ENV, JSON_MODES, FormatRefused, ServerAnswered, chat_params, one_line
from .protocol import (
    Generation,
    GenerationRequest,
    OptionScoreRequest,
    OptionScores,
    StreamTally,
    Usage,
    chat_deltas,
    choice_scores,
    top_logprob_scores,
)
from .reply import schema_data

__all__ = ["API_KEY_ENV", "BASE_URL_ENV", "JSON_MODES", "OpenAICompatLLM", "is_openai_spec", "parse_model_spec"]

log = logging.getLogger(__name__)

BASE_URL_ENV = "COE_OPENAI_BASE_URL"
SPEC_PREFIX = "openai:"
TOP_LOGPROBS = 20  # the most the OpenAI API (and vLLM's default limit) allows
_SPEC = re.compile(r"^openai:(?P<model>[^@]*?)(?:@(?P<url>https?://\S+))?$")


def _normalize_base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"OpenAI-compatible base URL must be http(s)://host[:port][/path], got {url!r}")
    if parts.path in ("", "/"):
        url += "/v1"  # every common server (vLLM, SGLang, llama.cpp, Ollama) serves the API under /v1
    return url


def parse_model_spec(spec: str) -> tuple[str, str | None]:
    """``openai:MODEL@http://host:port/v1`` → (MODEL, URL); the URL part is optional."""
    m = _SPEC.match(spec.strip())
    if not m or not m["model"].strip():
        raise InputError(f"bad model spec {spec!r}; use openai:MODEL@http://HOST:PORT/v1")
    return m["model"].strip(), m["url"]


def is_openai_spec(spec: str | None) -> bool:
    return spec is not None and spec.startswith(SPEC_PREFIX)


def _usage(reply: Any) -> Usage:
    usage = getattr(reply, "usage", None)
    return Usage(
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
    )


class OpenAICompatLLM:
    """An ``LLMPlugin`` over an OpenAI-compatible ``/chat/completions`` endpoint.

    Nothing touches the network at construction; call :meth:`check` to probe ``/models`` early."""

    name = "openai"
    native_batching = False  # the server batches concurrent requests itself; gathering them here only adds waits

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        supports_images: bool = True,
        json_mode: str = "auto",
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        max_concurrency: int = 4,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        try:
            from .openai_client import ServerClient
        except ImportError as exc:  # optional dependency group
            raise ConfigError("the OpenAI-compatible backend needs `pip install 'coe[openai]'`") from exc
        if json_mode not in JSON_MODES:
            raise ConfigError(f"json_mode must be one of {', '.join(JSON_MODES)}, got {json_mode!r}")
        if not model:
            raise ConfigError("the OpenAI-compatible backend needs a model name")
        base_url = base_url or settings().openai_base_url
        if not base_url:
            raise ConfigError(f"no server URL: use openai:MODEL@http://HOST:PORT/v1 or set {BASE_URL_ENV}")
        self.model_id = model
        self.base_url = _normalize_base_url(base_url)
        self.supports_images = supports_images
        self.json_mode = json_mode
        self.supports_json_schema = json_mode != "none"
        self.max_attempts = max(1, int(max_attempts))
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_concurrency = max(1, int(max_concurrency))
        self.extra_body = dict(extra_body or {})
        self._format = "json_schema" if json_mode == "auto" else json_mode
        self._format_lock = threading.Lock()
        self._has_logprobs = True  # turned off for good by the first reply without them
        self._server = ServerClient(
            self.base_url,
            api_key if api_key is not None else settings().openai_api_key,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_attempts=self.max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_concurrency=self.max_concurrency,
        )

    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> OpenAICompatLLM:
        """Build from ``MODEL[@URL]`` (the ``openai:`` prefix may stay on); images and JSON mode default from
        ``COE_OPENAI_*``."""
        model, url = parse_model_spec(spec if is_openai_spec(spec) else SPEC_PREFIX + spec)
        env = settings()
        options.setdefault("supports_images", env.openai_images)
        options.setdefault("json_mode", env.openai_json_mode.strip() or "auto")
        return cls(model, url, **options)

    def __repr__(self) -> str:
        return f"OpenAICompatLLM(model={self.model_id!r}, base_url={self.base_url!r}, json_mode={self.json_mode!r})"

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> OpenAICompatLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(self) -> list[str]:
        """GET ``/models``: fail now, with the one-line error, when the server is unusable. One attempt: a
        probe that waits out the retries of a real request would delay the error it exists to give early."""
        return self._server.models()

    # -- requests -------------------------------------------------------------------------------------

    def _params(self, request: GenerationRequest, fmt: str) -> dict[str, Any]:
        return chat_params(
            request, fmt, model_id=self.model_id, supports_images=self.supports_images, extra_body=self.extra_body
        )

    def _refusable(self, fmt: str, request: GenerationRequest) -> bool:
        return self.json_mode == "auto" and fmt == "json_schema" and request.json_schema is not None

    def _switch_format(self, refused: FormatRefused) -> None:
        with self._format_lock:
            self._format = "json_object"
        log.info(
            "%s rejected response_format json_schema (%s); using json_object", self.base_url, refused.server_message
        )

    def generate(self, request: GenerationRequest) -> Generation:
        start = time.perf_counter()
        fmt = self._format
        try:
            out = self._server.complete(self._params(request, fmt), refusable=self._refusable(fmt, request))
        except FormatRefused as refused:
            self._switch_format(refused)
            out = self._server.complete(self._params(request, "json_object"))
        seconds = time.perf_counter() - start
        choices = getattr(out, "choices", None)
        if not choices:
            raise ConfigError(
                f"OpenAI-compatible server at {self.base_url} sent no choices: {one_line(out.model_dump_json(), 160)}"
            )
        choice = choices[0]
        text = getattr(getattr(choice, "message", None), "content", None) or ""
        return Generation(
            text=text,
            data=schema_data(text, request.json_schema),
            seconds=seconds,
            model=getattr(out, "model", None) or self.model_id,
            finish_reason=getattr(choice, "finish_reason", None),
            usage=_usage(out),
        )

    def stream(self, request: GenerationRequest):
        """The reply's text chunks from the server's stream; returns the ``Generation``. Usage comes from the
        final chunk where the server sends it (``stream_options.include_usage``). Not retried."""
        start = time.perf_counter()
        fmt = self._format
        try:
            events = self._server.stream(self._params(request, fmt), refusable=self._refusable(fmt, request))
            first = next(events, None)
        except FormatRefused as refused:
            self._switch_format(refused)
            events = self._server.stream(self._params(request, "json_object"))
            first = next(events, None)
        tally = StreamTally(self.model_id)
        yield from chat_deltas(itertools.chain([] if first is None else [first], events), tally)
        text = tally.text
        return Generation(
            text=text,
            data=schema_data(text, request.json_schema),
            model=tally.model,
            seconds=time.perf_counter() - start,
            finish_reason=tally.finish_reason,
            usage=Usage(
                prompt_tokens=tally.usage.get("prompt_tokens") or 0,
                completion_tokens=tally.usage.get("completion_tokens") or 0,
            ),
        )

    def _no_logprobs(self, why: str) -> None:
        self._has_logprobs = False
        log.info("%s gives no token logprobs (%s); scoring options by a constrained choice", self.base_url, why)

    def score_options(self, request: OptionScoreRequest) -> OptionScores:
        """Each label's log-probability as the reply's first token, from the server's top logprobs."""
        if not self._has_logprobs:
            return choice_scores(self, request)
        start = time.perf_counter()
        params = self._params(GenerationRequest(messages=request.messages, max_tokens=1, temperature=0.0), self._format)
        try:
            out = self._server.complete({**params, "logprobs": True, "top_logprobs": TOP_LOGPROBS})
        except ServerAnswered as exc:
            if "logprobs" not in exc.server_message:  # not a refusal of logprobs
                raise
            self._no_logprobs(str(exc))
            return choice_scores(self, request)
        try:
            first = out.choices[0].logprobs.content[0].model_dump()
            logprobs, probs = top_logprob_scores(first, request.labels)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            self._no_logprobs(f"reply without choices[0].logprobs.content: {type(exc).__name__}")
            return choice_scores(self, request)
        return OptionScores(
            labels=list(request.labels),
            logprobs=logprobs,
            method="logprobs",
            probs=probs,
            model=getattr(out, "model", None) or self.model_id,
            usage=_usage(out),
            seconds=time.perf_counter() - start,
        )

    def generate_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        """At most ``max_concurrency`` requests in flight; results in request order."""
        if len(requests) <= 1 or self.max_concurrency == 1:
            return [self.generate(r) for r in requests]
        with ThreadPoolExecutor(
            max_workers=min(self.max_concurrency, len(requests)), thread_name_prefix="coe-openai"
        ) as pool:
            return list(pool.map(self.generate, requests))
