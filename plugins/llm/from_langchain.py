"""Any LangChain chat model (``ChatOpenAI``, ``ChatOllama``, a fake in tests, ...) as a coe LLM plugin.

A Python API only, not a ``coe.llm`` entry point: a chat model is an object with its own client and
credentials, not something a ``NAME:SPEC`` string can build. Use it through the graph's context::

    graph.invoke(state, config, context=Services(llm=LangChainLLM(ChatOpenAI(model=...)), retriever=...))

JSON-schema requests go through the chat model's own ``with_structured_output`` (``method="json_schema"``)
when its class provides one, else through an instruction appended to the last user message; either way the
reply text is parsed with ``parse_json_text``, as for every backend. Option scores come from the reply's
``response_metadata["logprobs"]`` (the OpenAI shape) when ``logprobs=True`` and the model returns them,
else from a constrained choice (``choice_scores``)."""

from __future__ import annotations

import json
import time
from typing import Any

from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from coe.errors import ConfigError

from .protocol import (
    Generation,
    GenerationRequest,
    Message,
    OptionScoreRequest,
    OptionScores,
    SequentialBatchMixin,
    Usage,
    choice_scores,
    top_logprob_scores,
)
from .reply import schema_data

TOP_LOGPROBS = 20  # the most the OpenAI API allows
_JSON_HINT = "\n\nReply with one JSON object only, no prose, matching this JSON schema: "


def _model_name(chat: BaseChatModel) -> str:
    for attr in ("model_name", "model", "model_id"):
        value = getattr(chat, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(chat).__name__


class LangChainLLM(SequentialBatchMixin):
    """``LangChainLLM(chat_model)``. ``supports_images``: send images as ``image_url`` data-URI blocks
    (only for vision models). ``structured``: ``"auto"`` (native when the class overrides
    ``with_structured_output``), ``"native"`` or ``"instruction"``. ``pass_params`` sends each request's
    ``max_tokens`` and ``temperature`` as call arguments (the OpenAI-style names most chat models take)."""

    name = "langchain"
    supports_json_schema = True

    def __init__(
        self,
        chat_model: BaseChatModel,
        *,
        model_id: str | None = None,
        supports_images: bool = False,
        structured: str = "auto",
        pass_params: bool = True,
        logprobs: bool = False,
    ) -> None:
        if not isinstance(chat_model, BaseChatModel):
            raise ConfigError(f"LangChainLLM needs a LangChain BaseChatModel, got {type(chat_model).__name__}")
        if structured not in ("auto", "native", "instruction"):
            raise ConfigError(f"structured must be auto, native or instruction, got {structured!r}")
        if structured == "auto":
            own = type(chat_model).with_structured_output is not BaseChatModel.with_structured_output
            structured = "native" if own else "instruction"
        self.chat_model = chat_model
        self.model_id = model_id or _model_name(chat_model)
        self.supports_images = supports_images
        self.structured = structured
        self.pass_params = pass_params
        self.logprobs = logprobs

    def __repr__(self) -> str:
        return f"LangChainLLM({type(self.chat_model).__name__}, model_id={self.model_id!r})"

    def _messages(self, messages: list[Message], json_schema: dict | None = None) -> list[BaseMessage]:
        out: list[BaseMessage] = []
        hint = _JSON_HINT + json.dumps(json_schema, separators=(",", ":")) if json_schema is not None else ""
        last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
        for i, m in enumerate(messages):
            text = m.content + (hint if i == last_user else "")
            if m.images and not self.supports_images:
                raise ConfigError(f"{self!r} is configured without image input; describe images as text")
            content: Any = text
            if m.images:
                content = ([{"type": "text", "text": text}] if text else []) + [
                    {"type": "image_url", "image_url": {"url": image.data_uri()}} for image in m.images
                ]
            out.append({"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}[m.role](content))
        if hint and last_user < 0:
            out.append(HumanMessage(hint.strip()))
        return out

    def _params(self, request: GenerationRequest) -> dict[str, Any]:
        params: dict[str, Any] = {"stop": request.stop or None}
        if self.pass_params:
            params.update(max_tokens=request.max_tokens, temperature=request.temperature)
        return params

    def generate(self, request: GenerationRequest) -> Generation:
        start = time.perf_counter()
        schema = request.json_schema
        if schema is not None and self.structured == "native":
            return self._generate_native(request, schema, start)
        reply = self.chat_model.invoke(self._messages(request.messages, schema), **self._params(request))
        usage = reply.usage_metadata
        meta = reply.response_metadata or {}
        return Generation(
            text=reply.text,
            data=schema_data(reply.text, schema),
            seconds=time.perf_counter() - start,
            model=meta.get("model_name") or self.model_id,
            finish_reason=meta.get("finish_reason"),
            usage=Usage(
                prompt_tokens=usage["input_tokens"] if usage else 0,
                completion_tokens=usage["output_tokens"] if usage else 0,
            ),
        )

    def _generate_native(self, request: GenerationRequest, schema: dict[str, Any], start: float) -> Generation:
        """Through ``with_structured_output`` without ``include_raw``: only then do call arguments reach the
        model (a sequence passes them to its first step; the raw/parsed map does not), so usage is read from a
        callback and the text is the parsed object written back as JSON."""
        runnable = self.chat_model.with_structured_output(schema, method="json_schema")
        usage_cb = UsageMetadataCallbackHandler()
        try:
            parsed = runnable.invoke(
                self._messages(request.messages), config={"callbacks": [usage_cb]}, **self._params(request)
            )
            text = json.dumps(parsed.model_dump() if hasattr(parsed, "model_dump") else parsed)
        except OutputParserException as exc:  # model output is untrusted: callers see the text, data None
            text = exc.llm_output or ""
        usage = list(usage_cb.usage_metadata.items())
        return Generation(
            text=text,
            data=schema_data(text, schema),
            seconds=time.perf_counter() - start,
            model=usage[0][0] if usage else self.model_id,
            usage=Usage(
                prompt_tokens=sum(u.get("input_tokens", 0) for _, u in usage),
                completion_tokens=sum(u.get("output_tokens", 0) for _, u in usage),
            ),
        )

    def score_options(self, request: OptionScoreRequest) -> OptionScores:
        """Each label's log-probability as the reply's first token, read from ``response_metadata["logprobs"]``
        (OpenAI's ``content[0].top_logprobs``); a constrained choice where the model gives none."""
        if not self.logprobs:
            return choice_scores(self, request)
        start = time.perf_counter()
        reply = self.chat_model.invoke(
            self._messages(request.messages), max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=TOP_LOGPROBS
        )
        try:
            logprobs, probs = top_logprob_scores(reply.response_metadata["logprobs"]["content"][0], request.labels)
        except (KeyError, IndexError, TypeError, ValueError):
            self.logprobs = False  # this model gives none: do not ask again
            return choice_scores(self, request)
        usage = getattr(reply, "usage_metadata", None) or {}
        return OptionScores(
            labels=list(request.labels),
            logprobs=logprobs,
            method="logprobs",
            probs=probs,
            model=(reply.response_metadata or {}).get("model_name") or self.model_id,
            seconds=time.perf_counter() - start,
            usage=Usage(prompt_tokens=usage.get("input_tokens", 0), completion_tokens=usage.get("output_tokens", 0)),
        )
