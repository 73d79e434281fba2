"""Present any LLM plugin as a LangChain chat model, so it composes with LCEL chains and agents."""

from __future__ import annotations

import base64
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict

from .protocol import GenerationRequest, ImageRef, LLMPlugin, Message

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def _image_from_url(url: str) -> ImageRef:
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        mime = header[5:].split(";")[0] or "image/png"
        return ImageRef(data=base64.b64decode(payload), mime=mime)
    if url.startswith(("http://", "https://")):
        raise ValueError("remote image URLs are not fetched; pass a data: URI or a file path")
    return ImageRef(path=url.removeprefix("file://"))


def to_plugin_message(message: BaseMessage) -> Message:
    role = _ROLES.get(message.type)
    if role is None:
        raise ValueError(f"unsupported message type for coe plugins: {message.type}")
    if isinstance(message.content, str):
        return Message(role=role, content=message.content)
    texts: list[str] = []
    images: list[ImageRef] = []
    for block in message.content:
        if isinstance(block, str):
            texts.append(block)
        elif block.get("type") == "text":
            texts.append(block["text"])
        elif block.get("type") == "image_url":
            url = block["image_url"]["url"] if isinstance(block["image_url"], dict) else block["image_url"]
            images.append(_image_from_url(url))
        elif block.get("type") == "image" and block.get("base64"):
            images.append(ImageRef(data=base64.b64decode(block["base64"]),
                                   mime=block.get("mime_type", "image/png")))
        else:
            raise ValueError(f"unsupported content block: {block.get('type')}")
    return Message(role=role, content="\n".join(texts), images=images)


class PluginChatModel(BaseChatModel):
    """``PluginChatModel(plugin=LlamaCppLLM(...))``; pass ``json_schema=...`` at call time for JSON output."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    plugin: Any
    max_tokens: int = 512
    temperature: float = 0.0

    @property
    def _llm_type(self) -> str:
        return f"coe-{getattr(self.plugin, 'name', 'plugin')}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"plugin": getattr(self.plugin, "name", None), "model": getattr(self.plugin, "model_id", None)}

    def _request(self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any) -> GenerationRequest:
        return GenerationRequest(
            messages=[to_plugin_message(m) for m in messages],
            json_schema=kwargs.get("json_schema"),
            max_tokens=kwargs.get("max_tokens", self.max_tokens),
            temperature=kwargs.get("temperature", self.temperature),
            stop=stop or [],
        )

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        plugin: LLMPlugin = self.plugin
        gen = plugin.generate(self._request(messages, stop, **kwargs))
        usage = {"input_tokens": gen.usage.prompt_tokens, "output_tokens": gen.usage.completion_tokens,
                 "total_tokens": gen.usage.total_tokens}
        message = AIMessage(content=gen.text, usage_metadata=usage,
                            response_metadata={"model": gen.model, "seconds": gen.seconds,
                                               "finish_reason": gen.finish_reason, "parsed": gen.data})
        return ChatResult(generations=[ChatGeneration(message=message)])
