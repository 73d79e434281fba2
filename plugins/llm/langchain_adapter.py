"""Present any LLM plugin as a LangChain chat model, so it composes with LCEL chains, agents and LangSmith.

The chat model is named by a model spec (``llamacpp:PRESET``, ``openai:MODEL@URL``, any ``coe.llm`` entry
point), resolved through ``coe.plugins.registry.resolve_llm`` on first use; that spec is also what it
serialises to, so ``dumpd``/``load`` round-trip without touching the model. Structured output and tool
calls both ride on the plugins' schema-constrained decoding (``GenerationRequest.json_schema``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from functools import cache
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda, RunnableMap, RunnablePassthrough
from langchain_core.runnables.config import run_in_executor
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, model_validator

from .langchain_messages import (
    json_schema_of,
    parse_structured,
    reply_message,
    to_plugin_message,
    tool_instruction,
    tool_reply_schema,
)
from .protocol import Generation, GenerationRequest, Message, Streamed, StreamingLLMPlugin

__all__ = ["PluginChatModel", "resolve_plugin", "to_plugin_message", "tool_reply_schema"]


def _spec_of(plugin: Any) -> str:
    """A spec ``resolve_llm`` resolves back to this plugin's model (the OpenAI backend needs its URL)."""
    base_url = getattr(plugin, "base_url", None)
    spec = f"{getattr(plugin, 'name', 'plugin')}:{getattr(plugin, 'model_id', '')}"
    return f"{spec}@{base_url}" if base_url else spec


@cache
def resolve_plugin(spec: str) -> Any:
    """One plugin per spec for the process: chat models built from the same spec share its loaded model."""
    from coe.plugins.registry import resolve_llm

    return resolve_llm(spec)


class PluginChatModel(BaseChatModel):
    """A coe LLM plugin as a LangChain chat model: ``PluginChatModel(model="llamacpp:PRESET")`` (resolved on
    first use), ``PluginChatModel(plugin=instance)``, or ``PluginChatModel()`` for ``COE_MODEL``. Streams
    through the plugin's ``stream`` where it has one (llama.cpp, OpenAI-compatible servers), else in one chunk.

    Structured output and tool calling (``bind_tools``) both use schema-constrained decoding, so they work on
    every backend with ``supports_json_schema`` (llama.cpp grammars, OpenAI-compatible ``response_format``):
    a tool call is a reply ``{"name", "arguments"}`` constrained to the bound tools' schemas, which a system
    message describes; not a server's native ``tools`` API. ``timeout`` and ``max_retries`` are accepted for
    LangChain's standard interface; a plugin built from a spec keeps its own (``COE_OPENAI_*``). An
    ``openai:`` spec's API key stays in the environment, read by the plugin, so nothing here is secret."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True, protected_namespaces=())

    model_name: str = Field(default="", alias="model")
    plugin: Any = Field(default=None, exclude=True)
    max_tokens: int = 512
    temperature: float = 0.0
    repeat_penalty: float = 1.0  # > 1 keeps small models out of loops in free-text fields (llama.cpp)
    stop: list[str] | None = None
    timeout: float | None = None
    max_retries: int | None = None
    streaming: bool = False

    @model_validator(mode="after")
    def _named(self) -> PluginChatModel:
        if not self.model_name:
            from coe.settings import settings

            self.model_name = _spec_of(self.plugin) if self.plugin is not None else (settings().model or "")
        if not self.model_name:
            raise ValueError(
                "PluginChatModel needs plugin=<LLM plugin>, model='NAME:SPEC' (e.g. llamacpp:PRESET) or COE_MODEL set"
            )
        return self

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @property
    def _llm_type(self) -> str:
        return "coe-plugin"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "max_tokens": self.max_tokens, "temperature": self.temperature}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        spec = kwargs.get("model") or self.model_name
        params = LangSmithParams(
            ls_provider=spec.partition(":")[0] if ":" in spec else "coe",
            ls_model_name=spec,
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
            ls_max_tokens=kwargs.get("max_tokens", self.max_tokens),
        )
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def _plugin(self, kwargs: dict) -> Any:
        override = kwargs.get("model")
        if override and override != self.model_name:
            return resolve_plugin(override)
        return self.plugin if self.plugin is not None else resolve_plugin(self.model_name)

    def _request(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict) -> GenerationRequest:
        plugin_messages = [to_plugin_message(m) for m in messages]
        schema = kwargs.get("json_schema")
        tools = self._tools(kwargs)
        if tools:
            schema = tool_reply_schema(tools, kwargs.get("tool_choice"))
            instruction = tool_instruction(tools)
            if plugin_messages and plugin_messages[0].role == "system":
                first = plugin_messages[0]
                plugin_messages[0] = first.model_copy(update={"content": f"{first.content}\n\n{instruction}"})
            else:
                plugin_messages.insert(0, Message(role="system", content=instruction))
        return GenerationRequest(
            messages=plugin_messages,
            json_schema=schema,
            max_tokens=kwargs.get("max_tokens", self.max_tokens),
            temperature=kwargs.get("temperature", self.temperature),
            repeat_penalty=kwargs.get("repeat_penalty", self.repeat_penalty),
            stop=stop or self.stop or [],
        )

    @staticmethod
    def _tools(kwargs: dict) -> list[dict] | None:
        return None if kwargs.get("tool_choice") == "none" else kwargs.get("tools")

    @staticmethod
    def _metadata(gen: Generation) -> tuple[dict, dict]:
        usage = {
            "input_tokens": gen.usage.prompt_tokens,
            "output_tokens": gen.usage.completion_tokens,
            "total_tokens": gen.usage.total_tokens,
        }
        meta = {
            "model_name": gen.model,
            "model": gen.model,
            "seconds": gen.seconds,
            "finish_reason": gen.finish_reason,
            "parsed": gen.data,
            "model_provider": "coe",
        }
        return usage, meta

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        gen = self._plugin(kwargs).generate(self._request(messages, stop, kwargs))
        text, calls = reply_message(gen, self._tools(kwargs))
        usage, meta = self._metadata(gen)
        message = AIMessage(content=text, tool_calls=calls, usage_metadata=usage, response_metadata=meta)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        plugin = self._plugin(kwargs)
        request = self._request(messages, stop, kwargs)
        tools = self._tools(kwargs)
        # a tool call is only known once the whole reply has parsed: one chunk, as without ``stream``
        streamed = not tools and isinstance(plugin, StreamingLLMPlugin)
        if not streamed:
            gen = plugin.generate(request)
        else:
            pieces = Streamed(plugin.stream(request))
            for piece in pieces:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
                if run_manager:
                    run_manager.on_llm_new_token(piece, chunk=chunk)
                yield chunk
            gen = pieces.generation
        text, calls = reply_message(gen, tools)
        usage, meta = self._metadata(gen)
        last = AIMessageChunk(
            content="" if streamed else text,
            usage_metadata=usage,
            response_metadata=meta,
            chunk_position="last",
            tool_call_chunks=[
                {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i, "type": "tool_call_chunk"}
                for i, c in enumerate(calls)
            ],
        )
        chunk = ChatGenerationChunk(message=last)
        if run_manager and last.content:
            run_manager.on_llm_new_token(last.text, chunk=chunk)
        yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        # The sync stream, one chunk per executor hop: backends decode in blocking native calls.
        chunks = self._stream(messages, stop, None, **kwargs)
        done: Any = object()  # the end marker; Any, so the chunks before it keep their type
        while (chunk := await run_in_executor(None, next, chunks, done)) is not done:
            if run_manager and chunk.message.content:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: str | dict | bool | None = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Tools as OpenAI function specs; ``tool_choice``: ``"auto"`` (default), ``"any"``/``"required"``/
        ``True`` (a call is forced), a tool's name, or ``"none"``. See the class docstring for how."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def with_structured_output(
        self,
        schema: Any = None,
        *,
        include_raw: bool = False,
        method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """Replies decoded under ``schema`` (pydantic model → instance; TypedDict or JSON schema → dict;
        ``None`` with ``method="json_mode"`` → any JSON object). ``method`` and ``strict`` do not change
        anything: decoding is always schema-constrained where the backend can."""
        if kwargs:
            raise ValueError(f"unsupported with_structured_output arguments: {sorted(kwargs)}")
        if schema is None and method != "json_mode":
            raise ValueError("with_structured_output needs a schema (or method='json_mode')")
        json_schema = json_schema_of(schema)
        llm = self.bind(
            json_schema=json_schema,
            ls_structured_output_format={
                "kwargs": {"method": method, "strict": strict},
                "schema": json_schema if schema is None else schema,
            },
        )
        parser = RunnableLambda(lambda message: parse_structured(schema, message))
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        failed = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([failed], exception_key="parsing_error")
