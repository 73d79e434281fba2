"""What the OpenAI-compatible backend sends (``chat.completions`` parameters for each JSON mode) and the
refusals it can get back. No SDK here: the plugin module imports this even where ``openai`` is missing."""

from __future__ import annotations

import json
import re
from typing import Any

from coe.errors import ConfigError

from .protocol import GenerationRequest, Message

JSON_MODES = ("auto", "json_schema", "json_object", "none")
API_KEY_ENV = "COE_OPENAI_API_KEY"
_FORM_REFUSAL = re.compile(r"response_format|json_schema")
_MAX_SERVER_MESSAGE = 300


class ServerAnswered(ConfigError):
    """The server answered with an HTTP error: ``status`` and its own ``server_message``."""

    def __init__(self, text: str, *, status: int, server_message: str) -> None:
        super().__init__(text)
        self.status, self.server_message = status, server_message


class FormatRefused(ServerAnswered):
    """The server refused the ``json_schema`` response format (``json_mode="auto"`` switches to ``json_object``)."""


def refuses_format(status: int, message: str) -> bool:
    """A 400/422/500 naming the response format. llama-cpp-python answers a ``json_schema`` it cannot take
    with a 500 validation error: a refusal of the request's form, not a busy server, so not worth a retry."""
    return status in (400, 422, 500) and bool(_FORM_REFUSAL.search(message))


def one_line(text: str, limit: int = _MAX_SERVER_MESSAGE) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_text(base_url: str, status: int, message: str, path: str, tries: int) -> str:
    """The one line for an HTTP error answer, with a hint where the status points at the setup."""
    hint = ""
    if status in (401, 403):
        hint = f" (check {API_KEY_ENV})"
    elif status == 404 and path == "/chat/completions":
        hint = " (is the base URL right? it usually ends in /v1)"
    after = f" after {tries} attempts" if tries > 1 else ""
    return f"OpenAI-compatible server at {base_url} answered HTTP {status}{after}: {message}{hint}"


def chat_message(message: Message, *, supports_images: bool, model_id: str) -> dict[str, Any]:
    if not message.images:
        return {"role": message.role, "content": message.content}
    if not supports_images:
        raise ConfigError(f"model {model_id} is configured without image input; describe images as text")
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    parts += [{"type": "image_url", "image_url": {"url": image.data_uri()}} for image in message.images]
    return {"role": message.role, "content": parts}


def _schema_in_prompt(messages: list[dict[str, Any]], schema: dict) -> None:
    """``json_mode="none"``: the schema goes into the last user message (or a new one) instead."""
    hint = "\n\nReply with one JSON object only, no prose, matching this JSON schema: " + json.dumps(
        schema, separators=(",", ":")
    )
    for m in reversed(messages):
        if m["role"] == "user":
            if isinstance(m["content"], str):
                m["content"] += hint
            else:
                m["content"].append({"type": "text", "text": hint.strip()})
            return
    messages.append({"role": "user", "content": hint.strip()})


def chat_params(
    request: GenerationRequest, fmt: str, *, model_id: str, supports_images: bool, extra_body: dict[str, Any]
) -> dict[str, Any]:
    """Keyword arguments of ``chat.completions.create`` for ``request`` in response format ``fmt``. Fields
    outside the OpenAI API (llama.cpp's ``repeat_penalty``, the caller's ``extra_body``) travel in the SDK's
    ``extra_body``, which is merged into the JSON body last, so the caller's keys win as before."""
    messages = [chat_message(m, supports_images=supports_images, model_id=model_id) for m in request.messages]
    params: dict[str, Any] = {
        "model": model_id,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
    }
    if request.seed is not None:
        params["seed"] = request.seed
    if request.stop:
        params["stop"] = list(request.stop)
    extra: dict[str, Any] = {}
    if request.repeat_penalty != 1.0:
        extra["repeat_penalty"] = request.repeat_penalty  # llama.cpp's name; other servers ignore it
    schema = request.json_schema
    if schema is not None:
        if fmt == "json_schema":
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": str(schema.get("title") or "reply"), "schema": schema, "strict": True},
            }
        elif fmt == "json_object":
            # llama-cpp-python's own form (the schema becomes a grammar); not in the SDK's types
            extra["response_format"] = {"type": "json_object", "schema": schema}
        else:
            _schema_in_prompt(messages, schema)
    extra.update(extra_body)
    if extra:
        params["extra_body"] = extra
    return params
