"""One model call with its trace record; parse failures are retried, then reported loudly."""

from __future__ import annotations

import time
import functools
from typing import Any

from coe.errors import ModelOutputError
from coe.plugins.llm.protocol import GenerationRequest, Message

from .contracts import Reply, check_mode


class PendingCall:
    """One model call of a step whose reply is ``contract`` (``contracts``), with parse retries, split into
    halves so many calls can share a batched request: ``request()`` gives the next attempt's request,
    ``feed(generation)`` parses the reply, and ``result()`` returns the value and trace fragment (or raises
    once the attempts are spent)."""

    def __init__(
        self,
        messages: list[Message],
        *,
        contract: type[Reply],
        mode: str = "json",
        context: dict[str, Any] | None = None,
        max_tokens: int,
        attempts: int = 2,
        repeat_penalty: float = 1.0,
        what: str = "output",
        extra: dict[str, Any] | None = None,
    ) -> None:
        # the schema and the parser come from the same contract, so they cannot disagree
        self.messages, self.contract, self.mode, self.context = messages, contract, check_mode(mode), context
        self.schema = contract.json_schema() if mode == "json" else None
        self.max_tokens, self.attempts, self.repeat_penalty, self.what = max_tokens, attempts, repeat_penalty, what
        self.extra = extra or {}  # added to the trace once the call is finished (e.g. the prompt id)
        self.trace: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content, "images": len(m.images)} for m in messages],
            "raw": [],
            "usage": {"prompt_tokens": 0, "prompt_tokens_reused": 0, "completion_tokens": 0},
        }
        self.attempt = 0
        self.done = False
        self.value: Any = None
        self.last_error = ""
        self.elapsed = 0.0

    @property
    def finished(self) -> bool:
        return self.done or self.attempt >= self.attempts

    def request(self) -> GenerationRequest:
        return GenerationRequest(
            messages=self.messages,
            json_schema=self.schema,
            max_tokens=self.max_tokens,
            temperature=0.0 if self.attempt == 0 else 0.7,
            seed=self.attempt,
            repeat_penalty=self.repeat_penalty,
        )

    def feed(self, gen, seconds: float = 0.0) -> bool:
        """Record one reply; True when it parsed."""
        self.elapsed += seconds
        self.trace["raw"].append(gen.text)
        self.trace["usage"]["prompt_tokens"] += gen.usage.prompt_tokens
        self.trace["usage"]["prompt_tokens_reused"] += gen.usage.prompt_tokens_reused
        self.trace["usage"]["completion_tokens"] += gen.usage.completion_tokens
        self.trace["model"] = gen.model
        self.attempt += 1
        try:
            self.value = self.contract.parse(gen.data, gen.text, self.mode, self.context)
        except (ValueError, KeyError, TypeError) as exc:
            self.last_error = str(exc)
            self.trace.setdefault("parse_errors", []).append(self.last_error)
            return False
        self.done = True
        self.trace["parsed"] = self.value
        return True

    def result(self) -> tuple[Any, dict]:
        self.trace["seconds"] = round(self.elapsed, 3)
        if self.done:
            self.trace["attempts"] = self.attempt
            self.trace.update(self.extra)
            return self.value, self.trace
        err = ModelOutputError(f"model {self.what} unusable after {self.attempts} attempts: {self.last_error}")
        err.trace = self.trace
        raise err


def _token_listener():
    """The callback manager of the graph step this call runs in, when the graph is streamed with
    ``stream_mode="messages"`` (LangGraph then listens for chat-model tokens); else None."""
    from langchain_core.runnables.config import ensure_config, get_callback_manager_for_config

    manager = get_callback_manager_for_config(ensure_config())
    wanted = any(type(h).__name__ == "StreamMessagesHandler" for h in manager.handlers)
    return manager if wanted else None


def streamed_generate(llm, request: GenerationRequest):
    """``llm.generate(request)``; inside a graph streamed with ``stream_mode="messages"`` and with a
    streaming backend, the reply's tokens are reported as a chat model's tokens as they are decoded, so
    ``graph.stream(..., stream_mode="messages")`` shows each step's text while it is written."""
    from coe.plugins.llm.protocol import Streamed, StreamingLLMPlugin

    manager = _token_listener() if isinstance(llm, StreamingLLMPlugin) else None
    if manager is None:
        return llm.generate(request)
    from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, LLMResult

    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    prompt = [kinds[m.role](m.content) for m in request.messages]  # the text a listener sees; images stay out
    run = manager.on_chat_model_start({"name": getattr(llm, "name", "coe")}, [prompt])[0]
    message_id = f"run-{run.run_id}"  # chunks and the final message are one message to a listener
    pieces = Streamed(llm.stream(request))
    try:
        for piece in pieces:
            run.on_llm_new_token(piece, chunk=ChatGenerationChunk(message=AIMessageChunk(content=piece, id=message_id)))
        gen = pieces.generation
        if gen is None:  # a plugin's stream ends by returning its Generation
            raise ModelOutputError(f"{getattr(llm, 'name', 'the model')} streamed no final reply")
    except BaseException as exc:
        run.on_llm_error(exc)
        raise
    run.on_llm_end(LLMResult(generations=[[ChatGeneration(message=AIMessage(content=gen.text, id=message_id))]]))
    return gen


def run_call(llm, call: PendingCall) -> tuple[Any, dict]:
    """Drive one pending call with single ``generate`` requests until it parses or runs out of attempts."""
    while not call.finished:
        start = time.perf_counter()
        gen = streamed_generate(llm, call.request())
        call.feed(gen, time.perf_counter() - start)
    return call.result()


def prompt_tallied(node):
    """A graph node whose trace entry records the prompt tokens its model calls evaluated and reused from
    the backend's KV cache (``prompt_tally`` of the llama.cpp plugin; nothing for backends without one)."""

    @functools.wraps(node)
    def tallied(state, config, runtime):
        tally = getattr(getattr(runtime.context, "llm", None), "prompt_tally", None)
        before = dict(tally) if isinstance(tally, dict) else None
        update = node(state, config, runtime)
        if before is not None and update.get("trace"):
            entry = update["trace"][-1]
            entry["prompt_tokens_evaluated"] = tally["evaluated"] - before["evaluated"]
            entry["prompt_tokens_reused"] = tally["reused"] - before["reused"]
        return update

    return tallied
