"""LangChain messages, tools and structured output in the plugins' terms: messages become plugin
``Message``s, bound tools become one JSON schema the reply is decoded under, and the reply becomes text,
tool calls or a parsed object again."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_json_schema

from .protocol import Generation, ImageRef, Message
from .reply import parse_json_text

_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "user"}
_FORCED = ("any", "required")


def _image_from_url(url: str) -> ImageRef:
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        mime = header[5:].split(";")[0] or "image/png"
        return ImageRef(data=base64.b64decode(payload), mime=mime)
    if url.startswith(("http://", "https://")):
        raise ValueError("remote image URLs are not fetched; pass a data: URI or a file path")
    return ImageRef(path=Path(url.removeprefix("file://")))


def to_plugin_message(message: BaseMessage) -> Message:
    """A plugin message; tool calls and tool results become text in the JSON shape the tool schema asks for,
    since plugins have no tool roles."""
    role = _ROLES.get(message.type)
    if role is None:
        raise ValueError(f"unsupported message type for coe plugins: {message.type}")
    texts: list[str] = []
    images: list[ImageRef] = []
    for block in [message.content] if isinstance(message.content, str) else message.content:
        if isinstance(block, str):
            texts.append(block)
        elif block.get("type") == "text":
            texts.append(block["text"])
        elif block.get("type") == "image_url":
            url = block["image_url"]["url"] if isinstance(block["image_url"], dict) else block["image_url"]
            images.append(_image_from_url(url))
        elif block.get("type") == "image" and block.get("base64"):
            images.append(ImageRef(data=base64.b64decode(block["base64"]), mime=block.get("mime_type", "image/png")))
        elif block.get("type") in ("tool_use", "tool_call") and getattr(message, "tool_calls", None):
            continue  # the same calls as ``message.tool_calls``, written out below
        else:
            raise ValueError(f"unsupported content block: {block.get('type')}")
    for call in getattr(message, "tool_calls", None) or []:
        texts.append(json.dumps({"name": call["name"], "arguments": call["args"]}))
    if isinstance(message, ToolMessage):
        texts = [f"Result of tool call {getattr(message, 'name', None) or message.tool_call_id}: " + "\n".join(texts)]
    return Message(role=role, content="\n".join(t for t in texts if t), images=images)


def tool_reply_schema(tools: list[dict], tool_choice: Any) -> dict:
    """The JSON schema of a reply to a model with tools: one call ``{"name", "arguments"}`` of a listed tool
    or, unless a call is forced, a plain answer ``{"content"}``."""
    forced = tool_choice in _FORCED or tool_choice is True
    if isinstance(tool_choice, dict):  # {"type": "function", "function": {"name": ...}}
        tool_choice = tool_choice.get("function", {}).get("name") or tool_choice.get("name")
    if isinstance(tool_choice, str) and tool_choice not in (*_FORCED, "auto", "none"):
        tools, forced = [t for t in tools if t["function"]["name"] == tool_choice], True
        if not tools:
            raise ValueError(f"tool_choice names no bound tool: {tool_choice!r}")
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t["function"]["name"]},
                "arguments": t["function"].get("parameters") or {"type": "object", "properties": {}},
            },
            "required": ["name", "arguments"],
        }
        for t in tools
    ]
    if not forced:
        options.append({"type": "object", "properties": {"content": {"type": "string"}}, "required": ["content"]})
    return options[0] if len(options) == 1 else {"anyOf": options}


def tool_instruction(tools: list[dict]) -> str:
    lines = ["You can call these tools:"]
    for t in tools:
        fn = t["function"]
        lines.append(
            f"- {fn['name']}: {fn.get('description', '')} Arguments (JSON schema): "
            f"{json.dumps(fn.get('parameters') or {})}"
        )
    lines.append(
        'To call one, reply {"name": TOOL, "arguments": {...}}; to answer directly, reply '
        '{"content": ANSWER}. Answer directly once the tool results you need are given.'
    )
    return "\n".join(lines)


def reply_message(gen: Generation, tools: list[dict] | None) -> tuple[str, list[dict]]:
    """The reply's text and tool calls; a reply that is not a call of a bound tool stays text."""
    if not tools:
        return gen.text, []
    try:
        data = parse_json_text(gen.text)
    except ValueError:
        return gen.text, []
    names = {t["function"]["name"] for t in tools}
    if isinstance(data, dict) and data.get("name") in names and isinstance(data.get("arguments"), dict):
        return "", [
            {
                "name": data["name"],
                "args": data["arguments"],
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "tool_call",
            }
        ]
    if isinstance(data, dict) and isinstance(data.get("content"), str):
        return data["content"], []
    return gen.text, []


def json_schema_of(schema: Any) -> dict:
    """LangChain's conversion; a plain JSON schema without a ``title`` (which that conversion needs, to name
    a function) is already what the plugins take."""
    if schema is None:
        return {"type": "object"}
    try:
        return convert_to_json_schema(schema)
    except ValueError:
        if isinstance(schema, dict) and isinstance(schema.get("type"), str):
            return schema
        raise


def parse_structured(schema: Any, message: BaseMessage) -> Any:
    try:
        data = parse_json_text(message.text)
        if isinstance(schema, type) and hasattr(schema, "model_validate"):
            return schema.model_validate(data)
        if isinstance(schema, type) and hasattr(schema, "parse_obj"):  # pydantic.v1 models
            return schema.parse_obj(data)
        return data
    except ValueError as exc:  # pydantic's ValidationError is one too
        raise OutputParserException(f"reply does not fit the schema: {exc}", llm_output=message.text) from exc
