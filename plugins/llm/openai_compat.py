"""OpenAI-compatible chat server backend: vLLM, SGLang, llama.cpp's servers, Ollama, or a hosted API.

Talks plain HTTP (``POST {base_url}/chat/completions``) through ``httpx``; no vendor SDK.

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
import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from tenacity import (RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential,
                      wait_random_exponential)

from coe.errors import ConfigError, InputError
from coe.settings import settings

from .protocol import (Generation, GenerationRequest, Message, OptionScoreRequest, OptionScores, Usage,
                       StreamTally, chat_deltas, choice_scores, top_logprob_scores)
from .reply import schema_data

log = logging.getLogger(__name__)

JSON_MODES = ("auto", "json_schema", "json_object", "none")
API_KEY_ENV = "COE_OPENAI_API_KEY"
BASE_URL_ENV = "COE_OPENAI_BASE_URL"
SPEC_PREFIX = "openai:"
_MAX_SERVER_MESSAGE = 300
TOP_LOGPROBS = 20  # the most the OpenAI API (and vLLM's default limit) allows
_SPEC = re.compile(r"^openai:(?P<model>[^@]*?)(?:@(?P<url>https?://\S+))?$")


class _FormatRejected(Exception):
    """The server refused the ``json_schema`` response format (handled by ``json_mode="auto"``)."""


class _Retryable(Exception):
    """A try worth repeating: the server was unreachable (``why``) or answered 429/5xx (``response``)."""

    def __init__(self, *, why: str = "", response=None) -> None:
        super().__init__(why or f"HTTP {response.status_code}")
        self.why, self.response = why, response


def _one_line(text: str, limit: int = _MAX_SERVER_MESSAGE) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _server_message(response) -> str:
    """The server's own error text: OpenAI ``{"error": {"message"}}``, FastAPI ``detail``, or the body."""
    try:
        body = response.json()
    except ValueError:
        return _one_line(response.text or response.reason_phrase or "")
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return _one_line(error["message"])
        for key in ("error", "detail", "message"):
            if body.get(key):
                value = body[key]
                return _one_line(value if isinstance(value, str) else json.dumps(value))
    return _one_line(json.dumps(body))


def _normalize_base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"OpenAI-compatible base URL must be http(s)://host[:port][/path], got {url!r}")
    if parts.path in ("", "/"):
        url += "/v1"  # every common server (vLLM, SGLang, llama.cpp, Ollama) serves the API under /v1
    return url


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def parse_model_spec(spec: str) -> tuple[str, str | None]:
    """``openai:MODEL@http://host:port/v1`` → (MODEL, URL); the URL part is optional."""
    m = _SPEC.match(spec.strip())
    if not m or not m["model"].strip():
        raise InputError(f"bad model spec {spec!r}; use openai:MODEL@http://HOST:PORT/v1")
    return m["model"].strip(), m["url"]


def is_openai_spec(spec: str | None) -> bool:
    return spec is not None and spec.startswith(SPEC_PREFIX)


class OpenAICompatLLM:
    """An ``LLMPlugin`` over an OpenAI-compatible ``/chat/completions`` endpoint.

    Nothing touches the network at construction; call :meth:`check` to probe ``/models`` early."""

    name = "openai"
    native_batching = False  # the server batches concurrent requests itself; gathering them here only adds waits

    def __init__(self, model: str, base_url: str | None = None, *, api_key: str | None = None,
                 supports_images: bool = True, json_mode: str = "auto", connect_timeout: float = 5.0,
                 read_timeout: float = 300.0, max_attempts: int = 4, backoff_base: float = 0.5,
                 backoff_max: float = 8.0, max_concurrency: int = 4,
                 extra_body: dict[str, Any] | None = None) -> None:
        try:
            import httpx
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
        # "equal jitter": half the exponential step fixed, half random, so capped waits still spread out
        # (tenacity's wait_exponential_jitter adds its jitter before the cap, which then removes it)
        self._backoff = (wait_exponential(multiplier=backoff_base / 2, max=backoff_max / 2)
                         + wait_random_exponential(multiplier=backoff_base / 2, max=backoff_max / 2))
        self.max_concurrency = max(1, int(max_concurrency))
        self.extra_body = dict(extra_body or {})
        self._format = "json_schema" if json_mode == "auto" else json_mode
        self._format_lock = threading.Lock()
        self._has_logprobs = True  # turned off for good by the first reply without them
        headers = {"Accept": "application/json"}
        key = api_key if api_key is not None else settings().openai_api_key
        if key:
            headers["Authorization"] = f"Bearer {key}"  # kept in the client only: never logged or echoed
        self._httpx = httpx
        self._client = httpx.Client(
            headers=headers, trust_env=not _is_loopback(self.base_url),  # no proxy for a local server
            timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout, write=30.0, pool=read_timeout),
            limits=httpx.Limits(max_connections=self.max_concurrency,
                                max_keepalive_connections=self.max_concurrency))

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
        self._client.close()

    def __enter__(self) -> OpenAICompatLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP -----------------------------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter; a server's ``Retry-After`` (seconds) wins, capped."""
        failure = state.outcome.exception() if state.outcome is not None else None
        response = getattr(failure, "response", None)
        after = response.headers.get("retry-after") if response is not None else None
        try:
            if after is not None:
                return min(max(float(after), 0.0), self.backoff_max)
        except ValueError:
            pass  # an HTTP date or junk: back off as usual
        return self._backoff(state)

    def _log_retry(self, state: RetryCallState) -> None:
        outcome, action = state.outcome, state.next_action
        failure = outcome.exception() if outcome is not None else None
        if action is None or not isinstance(failure, _Retryable):  # tenacity: set before every before_sleep
            return
        delay = action.sleep
        if failure.response is None:
            log.info("cannot reach %s (%s); retrying in %.2f s", self.base_url, failure.why, delay)
        else:
            log.info("%s answered HTTP %d; retrying in %.2f s", self.base_url, failure.response.status_code, delay)

    def _send(self, method: str, path: str, payload: dict | None = None, *, attempts: int | None = None) -> dict:
        retrying = Retrying(stop=stop_after_attempt(attempts or self.max_attempts), wait=self._wait,
                            retry=retry_if_exception_type(_Retryable), before_sleep=self._log_retry,
                            reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    return self._send_once(method, path, payload, attempt.retry_state.attempt_number)
        except _Retryable as failure:
            tries = attempt.retry_state.attempt_number
            if failure.response is None:
                after = f" (after {tries} attempts)" if tries > 1 else ""
                raise ConfigError(f"cannot reach OpenAI-compatible server at {self.base_url}: "
                                  f"{failure.why}{after}") from failure.__cause__
            raise self._http_error(failure.response, _server_message(failure.response), path, tries) from None
        raise AssertionError("unreachable: tenacity returns or raises")

    def _send_once(self, method: str, path: str, payload: dict | None, attempt: int) -> dict:
        """One request; ``_Retryable`` when repeating it may help (unreachable, 429, 5xx)."""
        httpx = self._httpx
        try:
            response = self._client.request(method, f"{self.base_url}{path}", json=payload)
        except httpx.ReadTimeout as exc:
            # the server took the request and is still working: sending it again only adds load
            raise ConfigError(f"OpenAI-compatible server at {self.base_url} did not answer within "
                              f"{self._client.timeout.read:g} s ({method} {path})") from exc
        except httpx.TransportError as exc:  # refused, reset, DNS, connect timeout, dropped connection
            raise _Retryable(why=_one_line(str(exc) or type(exc).__name__, 160)) from exc
        status = response.status_code
        if status < 400:
            try:
                return response.json()
            except ValueError as exc:
                raise ConfigError(f"OpenAI-compatible server at {self.base_url} sent a reply that is not "
                                  f"JSON: {_one_line(response.text, 120)}") from exc
        message = _server_message(response)
        if (payload is not None and self.json_mode == "auto" and self._format == "json_schema"
                and "response_format" in payload and status in (400, 422, 500)
                and re.search(r"response_format|json_schema", message)):
            raise _FormatRejected(message)
        if status == 429 or status >= 500:
            raise _Retryable(response=response)
        raise self._http_error(response, message, path, attempt)

    def _http_error(self, response, message: str, path: str, tries: int) -> ConfigError:
        status = response.status_code
        hint = ""
        if status in (401, 403):
            hint = f" (check {API_KEY_ENV})"
        elif status == 404 and path == "/chat/completions":
            hint = " (is the base URL right? it usually ends in /v1)"
        after = f" after {tries} attempts" if tries > 1 else ""
        return ConfigError(f"OpenAI-compatible server at {self.base_url} answered HTTP {status}{after}: "
                           f"{message or response.reason_phrase}{hint}")

    def check(self) -> list[str]:
        """GET ``/models``: fail now, with the one-line error, when the server is unusable. One attempt: a
        probe that waits out the retries of a real request would delay the error it exists to give early."""
        out = self._send("GET", "/models", attempts=1)
        return [m.get("id", "") for m in out.get("data", []) if isinstance(m, dict)]

    # -- requests -------------------------------------------------------------------------------------

    def _message(self, message: Message) -> dict[str, Any]:
        if not message.images:
            return {"role": message.role, "content": message.content}
        if not self.supports_images:
            raise ConfigError(f"model {self.model_id} is configured without image input; "
                              "describe images as text")
        parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
        parts += [{"type": "image_url", "image_url": {"url": image.data_uri()}} for image in message.images]
        return {"role": message.role, "content": parts}

    def _payload(self, request: GenerationRequest, fmt: str) -> dict[str, Any]:
        messages = [self._message(m) for m in request.messages]
        payload: dict[str, Any] = {"model": self.model_id, "messages": messages,
                                   "max_tokens": request.max_tokens, "temperature": request.temperature,
                                   "top_p": request.top_p, "stream": False}
        if request.seed is not None:
            payload["seed"] = request.seed
        if request.stop:
            payload["stop"] = list(request.stop)
        if request.repeat_penalty != 1.0:
            payload["repeat_penalty"] = request.repeat_penalty  # llama.cpp name; others ignore it
        schema = request.json_schema
        if schema is not None:
            if fmt == "json_schema":
                payload["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": str(schema.get("title") or "reply"), "schema": schema, "strict": True}}
            elif fmt == "json_object":
                payload["response_format"] = {"type": "json_object", "schema": schema}
            else:
                hint = ("\n\nReply with one JSON object only, no prose, matching this JSON schema: "
                        + json.dumps(schema, separators=(",", ":")))
                for m in reversed(messages):
                    if m["role"] == "user":
                        if isinstance(m["content"], str):
                            m["content"] += hint
                        else:
                            m["content"].append({"type": "text", "text": hint.strip()})
                        break
                else:
                    messages.append({"role": "user", "content": hint.strip()})
        payload.update(self.extra_body)
        return payload

    def generate(self, request: GenerationRequest) -> Generation:
        start = time.perf_counter()
        fmt = self._format
        try:
            out = self._send("POST", "/chat/completions", self._payload(request, fmt))
        except _FormatRejected as rejected:
            with self._format_lock:
                self._format = "json_object"
            log.info("%s rejected response_format json_schema (%s); using json_object", self.base_url, rejected)
            out = self._send("POST", "/chat/completions", self._payload(request, "json_object"))
        seconds = time.perf_counter() - start
        try:
            choice = out["choices"][0]
            text = (choice.get("message") or {}).get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ConfigError(f"OpenAI-compatible server at {self.base_url} sent no choices: "
                              f"{_one_line(json.dumps(out), 160)}") from exc
        data = schema_data(text, request.json_schema)
        usage = out.get("usage") or {}
        return Generation(text=text, data=data, seconds=seconds, model=out.get("model") or self.model_id,
                          finish_reason=choice.get("finish_reason"),
                          usage=Usage(prompt_tokens=usage.get("prompt_tokens") or 0,
                                      completion_tokens=usage.get("completion_tokens") or 0))

    def stream(self, request: GenerationRequest):
        """The reply's text chunks from the server's SSE stream (``stream: true``); returns the ``Generation``.
        Usage comes from the final chunk where the server sends it (``stream_options.include_usage``).
        Not retried: a stream cut halfway cannot be resumed without repeating what was already yielded."""
        start = time.perf_counter()
        try:
            events = self._stream_events(self._payload(request, self._format))
            first = next(events, None)
        except _FormatRejected as rejected:
            with self._format_lock:
                self._format = "json_object"
            log.info("%s rejected response_format json_schema (%s); using json_object", self.base_url, rejected)
            events = self._stream_events(self._payload(request, "json_object"))
            first = next(events, None)
        tally = StreamTally(self.model_id)
        yield from chat_deltas(itertools.chain([] if first is None else [first], events), tally)
        text = tally.text
        return Generation(text=text, data=schema_data(text, request.json_schema), model=tally.model,
                          seconds=time.perf_counter() - start, finish_reason=tally.finish_reason,
                          usage=Usage(prompt_tokens=tally.usage.get("prompt_tokens") or 0,
                                      completion_tokens=tally.usage.get("completion_tokens") or 0))

    def _stream_events(self, payload: dict):
        """The JSON events of one SSE reply, until ``data: [DONE]``; HTTP errors as ``_send`` reports them."""
        payload = {**payload, "stream": True, "stream_options": {"include_usage": True}}
        httpx = self._httpx
        try:
            with self._client.stream("POST", f"{self.base_url}/chat/completions", json=payload) as response:
                if response.status_code >= 400:
                    response.read()
                    message = _server_message(response)
                    if (self.json_mode == "auto" and self._format == "json_schema" and "response_format" in payload
                            and response.status_code in (400, 422, 500)
                            and re.search(r"response_format|json_schema", message)):
                        raise _FormatRejected(message)
                    raise ConfigError(f"OpenAI-compatible server at {self.base_url} answered HTTP "
                                      f"{response.status_code}: {message or response.reason_phrase}")
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, comments, ``event:`` lines
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        yield json.loads(data)
                    except ValueError as exc:
                        raise ConfigError(f"OpenAI-compatible server at {self.base_url} sent a stream event "
                                          f"that is not JSON: {_one_line(data, 120)}") from exc
        except httpx.TransportError as exc:
            raise ConfigError(f"stream from OpenAI-compatible server at {self.base_url} failed: "
                              f"{_one_line(str(exc) or type(exc).__name__, 160)}") from exc

    def _no_logprobs(self, why: str) -> None:
        self._has_logprobs = False
        log.info("%s gives no token logprobs (%s); scoring options by a constrained choice", self.base_url, why)

    def score_options(self, request: OptionScoreRequest) -> OptionScores:
        """Each label's log-probability as the reply's first token, from the server's top logprobs."""
        if not self._has_logprobs:
            return choice_scores(self, request)
        start = time.perf_counter()
        payload = self._payload(GenerationRequest(messages=request.messages, max_tokens=1, temperature=0.0),
                                self._format)
        payload.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        try:
            out = self._send("POST", "/chat/completions", payload)
        except ConfigError as exc:
            if not re.search(r"HTTP \d{3}.*logprobs", str(exc)):  # not a refusal of logprobs
                raise
            self._no_logprobs(str(exc))
            return choice_scores(self, request)
        try:
            logprobs, probs = top_logprob_scores(out["choices"][0]["logprobs"]["content"][0], request.labels)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self._no_logprobs(f"reply without choices[0].logprobs.content: {type(exc).__name__}")
            return choice_scores(self, request)
        usage = out.get("usage") or {}
        return OptionScores(labels=list(request.labels), logprobs=logprobs, method="logprobs", probs=probs,
                            model=out.get("model") or self.model_id, seconds=time.perf_counter() - start,
                            usage=Usage(prompt_tokens=usage.get("prompt_tokens") or 0,
                                        completion_tokens=usage.get("completion_tokens") or 0))

    def generate_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        """At most ``max_concurrency`` requests in flight; results in request order."""
        if len(requests) <= 1 or self.max_concurrency == 1:
            return [self.generate(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(requests)),
                                thread_name_prefix="coe-openai") as pool:
            return list(pool.map(self.generate, requests))
