"""The official ``openai`` SDK talking to an OpenAI-compatible server, its failures as one-line ``ConfigError``s.

The SDK does the HTTP: retries (unreachable server, 408/409/429/5xx) honouring ``Retry-After``, the SSE
stream, typed errors. Three hooks of its client are this backend's own:

* the backoff: ``backoff_base``/``backoff_max`` with equal jitter, and ``Retry-After`` capped at
  ``backoff_max`` (the SDK's delays are module constants, and it waits out a ``Retry-After`` of up to two
  minutes, long for a batch with other items to run);
* a 5xx that refuses the response format (``refuses_format``) is not retried: repeating it gets the same;
* a read timeout is not retried: the server took the request and is still working, so sending it again only
  adds load (the SDK retries every timeout). The HTTP client raises it as an ``OpenAIError``, which the SDK
  passes on without retrying.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx2  # the SDK's HTTP library (openai >= 3)
import openai

from coe.errors import ConfigError

from .openai_request import FormatRefused, ServerAnswered, error_text, one_line, refuses_format

# servers started without a key ignore the header; the SDK will not run without one (vLLM's docs use "EMPTY")
_NO_KEY = "EMPTY"


def backoff_delay(retry: int, base: float, cap: float) -> float:
    """Seconds before retry ``retry`` (0 = the first): exponential and capped, with "equal jitter" (half the
    step fixed, half random), so capped waits still spread out."""
    step = min(base * 2 ** min(retry, 60), cap) / 2
    return step + random.uniform(0, step)


def server_message(response: httpx2.Response) -> str:
    """The server's own error text: OpenAI ``{"error": {"message"}}``, FastAPI ``detail``, or the body."""
    try:
        response.read()
        body = response.json()
    except (ValueError, httpx2.HTTPError):
        return one_line(response.text or response.reason_phrase or "")
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return one_line(error["message"])
        for key in ("error", "detail", "message"):
            if body.get(key):
                value = body[key]
                return one_line(value if isinstance(value, str) else json.dumps(value))
    return one_line(json.dumps(body))


class _NoAnswer(openai.OpenAIError):
    """The server took the request and sent nothing back within the read timeout."""

    def __init__(self, seconds: float, method: str) -> None:
        super().__init__(f"no answer within {seconds:g} s")
        self.seconds, self.method = seconds, method


class _HttpClient(openai.DefaultHttpxClient):
    def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        try:
            return super().send(request, **kwargs)
        except httpx2.ReadTimeout as exc:
            seconds = (request.extensions.get("timeout") or {}).get("read") or self.timeout.read or 0.0
            raise _NoAnswer(float(seconds), request.method) from exc


class _SDKClient(openai.OpenAI):
    backoff_base = 0.5
    backoff_max = 8.0

    def _calculate_retry_timeout(self, remaining_retries: int, options: Any, response_headers: Any = None) -> float:
        after = self._parse_retry_after_header(response_headers)
        if after is not None:
            return min(max(after, 0.0), self.backoff_max)
        retry = options.get_max_retries(self.max_retries) - remaining_retries
        return backoff_delay(retry, self.backoff_base, self.backoff_max)

    def _should_retry(self, response: httpx2.Response) -> bool:
        if response.status_code >= 500 and refuses_format(response.status_code, server_message(response)):
            return False
        return super()._should_retry(response)


def _tries(exc: openai.APIError) -> int:
    """Attempts made, from the retry count the SDK writes on each request it sends."""
    request = exc.response.request if isinstance(exc, openai.APIStatusError) else exc.request
    try:
        return int(request.headers.get("x-stainless-retry-count", "0")) + 1
    except ValueError:
        return 1


class ServerClient:
    """One server's SDK clients (retrying, and trying once), sharing one pool of ``max_concurrency``
    connections; every SDK failure leaves as a one-line ``ConfigError`` naming ``base_url``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_attempts: int,
        backoff_base: float,
        backoff_max: float,
        max_concurrency: int,
    ) -> None:
        self.base_url = base_url
        timeout = httpx2.Timeout(connect=connect_timeout, read=read_timeout, write=30.0, pool=read_timeout)
        host = (urlsplit(base_url).hostname or "").lower()
        loopback = host in ("localhost", "::1") or host.startswith("127.")
        self._http = _HttpClient(
            timeout=timeout,
            trust_env=not loopback,  # no proxy for a local server
            limits=httpx2.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )

        def client(max_retries: int) -> _SDKClient:
            # the key lives in the SDK client only: never logged or echoed
            made = _SDKClient(
                base_url=base_url,
                api_key=api_key or _NO_KEY,
                timeout=timeout,
                max_retries=max_retries,
                http_client=self._http,
            )
            made.backoff_base, made.backoff_max = backoff_base, backoff_max
            return made

        self._retrying, self._once = client(max(1, max_attempts) - 1), client(0)

    def close(self) -> None:
        self._http.close()

    def _error(self, exc: openai.OpenAIError, path: str, *, refusable: bool = False) -> ConfigError:
        if isinstance(exc, _NoAnswer):
            return ConfigError(
                f"OpenAI-compatible server at {self.base_url} did not answer within "
                f"{exc.seconds:g} s ({exc.method} {path})"
            )
        if isinstance(exc, openai.APIStatusError):
            status, message = exc.status_code, server_message(exc.response)
            kind = FormatRefused if refusable and refuses_format(status, message) else ServerAnswered
            return kind(
                error_text(self.base_url, status, message or exc.response.reason_phrase, path, _tries(exc)),
                status=status,
                server_message=message,
            )
        if isinstance(exc, openai.APIConnectionError):  # refused, reset, DNS, connect timeout, dropped
            cause = exc.__cause__
            why = one_line((str(cause) or type(cause).__name__) if cause else exc.message, 160)
            tries = _tries(exc)
            after = f" (after {tries} attempts)" if tries > 1 else ""
            return ConfigError(f"cannot reach OpenAI-compatible server at {self.base_url}: {why}{after}")
        return ConfigError(
            f"OpenAI-compatible server at {self.base_url} sent a reply this client cannot "
            f"read: {one_line(str(exc), 160)}"
        )

    def complete(self, params: dict[str, Any], *, refusable: bool = False) -> Any:
        """One ``chat.completions`` reply (the SDK's ``ChatCompletion``), retried as the module says;
        ``FormatRefused`` where ``refusable`` and the server refuses the response format."""
        try:
            return self._retrying.chat.completions.create(**params)
        except openai.OpenAIError as exc:
            raise self._error(exc, "/chat/completions", refusable=refusable) from exc
        except ValueError as exc:  # a 2xx whose body is not JSON
            raise ConfigError(
                f"OpenAI-compatible server at {self.base_url} sent a reply that is not JSON: "
                f"{one_line(getattr(exc, 'doc', '') or str(exc), 120)}"
            ) from exc

    def stream(self, params: dict[str, Any], *, refusable: bool = False) -> Iterator[dict]:
        """The ``chat.completion.chunk`` events of one streamed reply, as dicts. Tried once: a stream cut
        halfway cannot be resumed without repeating what was already yielded."""
        try:
            chunks = self._once.chat.completions.create(**params, stream=True, stream_options={"include_usage": True})
        except openai.APIConnectionError as exc:
            raise self._stream_failed(exc.__cause__ or exc) from exc
        except openai.OpenAIError as exc:
            raise self._error(exc, "/chat/completions", refusable=refusable) from exc
        with chunks:
            try:
                for chunk in chunks:
                    yield chunk.model_dump(exclude_unset=True)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"OpenAI-compatible server at {self.base_url} sent a stream event that is "
                    f"not JSON: {one_line(exc.doc, 120)}"
                ) from exc
            except httpx2.TransportError as exc:
                raise self._stream_failed(exc) from exc
            except openai.APIError as exc:  # an ``error`` event inside the stream
                raise ConfigError(
                    f"OpenAI-compatible server at {self.base_url} sent an error in its stream: {one_line(exc.message)}"
                ) from exc

    def _stream_failed(self, exc: BaseException) -> ConfigError:
        return ConfigError(
            f"stream from OpenAI-compatible server at {self.base_url} failed: "
            f"{one_line(str(exc) or type(exc).__name__, 160)}"
        )

    def models(self) -> list[str]:
        """The served model ids (``GET /models``), one attempt."""
        try:
            page = self._once.models.list()
        except openai.OpenAIError as exc:
            raise self._error(exc, "/models") from exc
        return [getattr(m, "id", "") or "" for m in getattr(page, "data", None) or []]
