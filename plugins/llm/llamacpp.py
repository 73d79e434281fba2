"""llama.cpp backend (GGUF on CPU) with JSON-schema constrained decoding through llama.cpp grammars.

Option scoring reads the full-vocabulary logits after the prompt (no top-k cut) in a second llama.cpp
context on the same (memory-mapped, so shared) weights: generation and scoring prompts have different
prefixes (the item's exemplars vs. a student's view of it), and with one context each would evict the
other's KV prefix between the interleaved calls of one item. In the scoring context the prompt is tokenized
exactly as ``create_chat_completion`` would send it and only the part after the longest prefix already
in its cache is evaluated.

Cancelling: ``cancel()`` (or a SIGINT through ``on_sigint``) makes every llama.cpp call in the process stop
within one compute-graph node and raise ``KeyboardInterrupt``. The check is llama.cpp's abort callback, so a
long prompt evaluation stops too, not only generation between tokens; ``resume()`` allows new calls."""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from coe.errors import ConfigError, InputError

from .llamacpp_sampling import grammar_last
from .protocol import (
    Generation,
    GenerationRequest,
    OptionScoreRequest,
    OptionScores,
    SequentialBatchMixin,
    StreamTally,
    Usage,
    chat_deltas,
    label_probs,
    label_token_ids,
)
from .reply import schema_data


CANCEL = threading.Event()
_ABORT_CALLBACK = None  # the ctypes callback must outlive every context it is set on
_LLAMA_LOG = logging.getLogger("llama-cpp-python")  # llama-cpp-python prints llama.cpp's log at this level
_log_level: list[int] = []  # the level before cancel(), put back by resume()


def cancel() -> None:
    """Stop every llama.cpp call of this process: each raises ``KeyboardInterrupt`` (a batch runner's stop)."""
    if not CANCEL.is_set():
        # llama.cpp logs each aborted decode as an error; here the abort is what was asked for.
        _log_level[:] = [_LLAMA_LOG.level]
        _LLAMA_LOG.setLevel(logging.CRITICAL)
    CANCEL.set()


def resume() -> None:
    """Allow llama.cpp calls again after ``cancel()``."""
    CANCEL.clear()
    if _log_level:
        _LLAMA_LOG.setLevel(_log_level.pop())


def _should_abort(_data) -> bool:
    # Called by llama.cpp between compute-graph nodes (about a microsecond each, under 1 % of a token).
    return CANCEL.is_set()


def on_sigint(signum, frame) -> None:
    """SIGINT handler: cancel llama.cpp work and raise ``KeyboardInterrupt``, except when the signal is handled
    inside ``_should_abort`` (a ctypes callback would swallow the exception); the aborted call raises it then."""
    cancel()
    while frame is not None:
        if frame.f_code is _should_abort.__code__:
            return
        frame = frame.f_back
    raise KeyboardInterrupt


def _abortable(llm):
    """``llm`` with the cancel check installed on its context."""
    global _ABORT_CALLBACK
    import llama_cpp

    if _ABORT_CALLBACK is None:
        _ABORT_CALLBACK = llama_cpp.ggml_abort_callback(_should_abort)
    llama_cpp.llama_set_abort_callback(llm.ctx, _ABORT_CALLBACK, None)
    return llm


@contextmanager
def _cancellable():
    """Turns a cancelled llama.cpp call (``llama_decode returned 2``) into ``KeyboardInterrupt``."""
    if CANCEL.is_set():
        raise KeyboardInterrupt("llama.cpp calls are cancelled")
    try:
        yield
    except RuntimeError:
        if CANCEL.is_set():
            raise KeyboardInterrupt("llama.cpp call cancelled") from None
        raise
    if CANCEL.is_set():
        raise KeyboardInterrupt("llama.cpp call cancelled")


class _RenderedPrompt(Exception):
    """Carries the prompt tokens out of the chat handler, which would otherwise go on to decode."""

    def __init__(self, prompt) -> None:
        super().__init__("prompt rendered")
        self.prompt = prompt


class LlamaCppLLM(SequentialBatchMixin):
    """Text-only: the GGUF chat models we ship have no vision projector, so images arrive as text."""

    name = "llamacpp"
    supports_images = False
    supports_json_schema = True

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        model_id: str | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # optional dependency group
            raise ConfigError("llama.cpp backend needs `pip install 'coe[llamacpp]'`") from exc
        path = Path(model_path)
        if not path.is_file():
            raise ConfigError(f"GGUF model not found: {path}")
        self.model_id = model_id or path.name
        self.model_path = path
        self._lock = threading.Lock()  # a Llama context is not safe to share between threads
        self._params: dict[str, Any] = dict(
            model_path=str(path), n_ctx=n_ctx, n_threads=n_threads or os.cpu_count() or 1, seed=seed, verbose=verbose
        )
        self._llm = self._counted(grammar_last(_abortable(Llama(**self._params))))
        # prompt tokens evaluated and reused (from the KV cache) by this model, both contexts together
        self.prompt_tally = {"evaluated": 0, "reused": 0}
        self._prompt_eval: tuple[int, int] | None = None
        # The scoring context is made with the model, not on first use: verification (on by default) scores
        # in it, and a second context is a second load of the model (0.6 s for the 0.5B, 1.5 s for the 1.5B
        # on 2 cores) that would otherwise fall inside a teacher's first item.
        self._scorer = _abortable(Llama(**self._params))

    def _counted(self, llm):
        """``llm`` whose first ``eval`` of a call records how much of the prompt its KV cache already held
        (llama-cpp-python's ``generate`` keeps the longest common prefix and evaluates the rest in one go)."""
        evaluate = llm.eval

        def eval_(tokens):
            if self._prompt_eval is None:
                self._prompt_eval = (llm.n_tokens, len(tokens))
            return evaluate(tokens)

        llm.eval = eval_
        return llm

    def _tally_prompt(self, reused: int, evaluated: int) -> int:
        self.prompt_tally["reused"] += reused
        self.prompt_tally["evaluated"] += evaluated
        return reused

    def _reused(self) -> int:
        """Prompt tokens the finished call read from the cache; resets the record for the next call."""
        reused, evaluated = self._prompt_eval or (0, 0)
        self._prompt_eval = None
        return self._tally_prompt(reused, evaluated)

    @classmethod
    def from_spec(cls, spec: str = "") -> "LlamaCppLLM":
        """A pulled preset's name, a local ``.gguf`` path, or nothing (the default preset)."""
        from coe.modelstore import resolve_llm

        name, path = resolve_llm(spec or None)
        return cls(path, model_id=name)

    def scoring_context(self):
        """The llama.cpp context that option scoring evaluates in (made with the model; callers hold the lock)."""
        return self._scorer

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _chat_messages(self, messages) -> list[dict]:
        if any(m.images for m in messages):
            raise ConfigError("the llama.cpp backend has no vision input; describe images as text")
        return [{"role": m.role, "content": m.content} for m in messages]

    @staticmethod
    def _completion_args(request: GenerationRequest) -> dict:
        """``create_chat_completion`` arguments for a request (messages aside): JSON schema as a grammar."""
        kwargs: dict = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "repeat_penalty": request.repeat_penalty,
            "stop": request.stop or None,
        }
        if request.json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
        if request.seed is not None:
            kwargs["seed"] = request.seed
        return kwargs

    def generate(self, request: GenerationRequest) -> Generation:
        messages = self._chat_messages(request.messages)
        start = time.perf_counter()
        with self._lock, _cancellable():
            self._prompt_eval = None
            out = self._llm.create_chat_completion(messages=messages, **self._completion_args(request))
            reused = self._reused()
        seconds = time.perf_counter() - start
        choice = out["choices"][0]
        text = choice["message"].get("content") or ""
        data = schema_data(text, request.json_schema)
        usage = out.get("usage") or {}
        return Generation(
            text=text,
            data=data,
            seconds=seconds,
            model=self.model_id,
            finish_reason=choice.get("finish_reason"),
            usage=Usage(
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0),
                prompt_tokens_reused=reused,
            ),
        )

    def stream(self, request: GenerationRequest):
        """The reply's text chunks as llama.cpp decodes them; returns the ``Generation``. The instance lock is
        held until the stream ends or is closed, so a half-read stream blocks other calls on this model."""
        messages = self._chat_messages(request.messages)
        start = time.perf_counter()
        tally = StreamTally()
        with self._lock, _cancellable():
            # llama.cpp reports no usage while streaming: the prompt is counted as its chat handler renders it
            prompt_tokens = len(self._prompt_tokens(self._llm, messages))
            self._prompt_eval = None
            chunks = self._llm.create_chat_completion(messages=messages, stream=True, **self._completion_args(request))
            yield from chat_deltas(chunks, tally)
            reused = self._reused()
        text = tally.text
        return Generation(
            text=text,
            data=schema_data(text, request.json_schema),
            model=self.model_id,
            seconds=time.perf_counter() - start,
            finish_reason=tally.finish_reason,
            usage=Usage(
                prompt_tokens=prompt_tokens,
                prompt_tokens_reused=reused,
                completion_tokens=self.count_tokens(text) if text else 0,
            ),
        )

    # -- option scoring (callers hold self._lock) --

    @staticmethod
    def _prompt_tokens(llm, messages: list[dict]) -> list[int]:
        """The tokens ``create_chat_completion`` would decode from: its own chat handler renders and
        tokenizes them, and is stopped where it hands them to ``create_completion``."""

        def stop(*args, **kwargs):
            raise _RenderedPrompt(kwargs.get("prompt", args[0] if args else None))

        llm.create_completion = stop  # shadows the method on this instance only, until ``finally``
        try:
            llm.create_chat_completion(messages=messages, max_tokens=1)
        except _RenderedPrompt as rendered:
            prompt = rendered.prompt
        else:
            raise ConfigError("the llama.cpp chat handler produced no prompt to score")
        finally:
            del llm.create_completion
        if isinstance(prompt, str):  # the handlers that render text rather than tokens
            return llm.tokenize(prompt.encode("utf-8"), special=True)
        return [int(t) for t in prompt]

    @staticmethod
    def _last_logits(llm, tokens: list[int]) -> tuple:
        """Full-vocabulary logits after ``tokens``, evaluating only what the KV cache does not hold yet.
        The last token is always evaluated again when everything else is cached: its logits are what
        we read, and the context may have moved on since it was last decoded."""
        import llama_cpp
        import numpy as np

        if len(tokens) >= llm.n_ctx():
            raise InputError(
                f"option-scoring prompt of {len(tokens)} tokens does not fit the context window of {llm.n_ctx()} tokens"
            )
        cached = llama_cpp.Llama.longest_token_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
        keep = min(cached, len(tokens) - 1)
        memory = llama_cpp.llama_get_memory(llm.ctx)
        if keep > 0 and llama_cpp.llama_memory_seq_rm(memory, 0, keep, -1):
            llm.n_tokens = keep
        else:  # nothing shared, or a model whose cache cannot be cut (recurrent): start over
            llm.reset()
            keep = 0
        llm.eval(tokens[keep:])
        row = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return np.ctypeslib.as_array(row, shape=(llm.n_vocab(),)).copy(), keep

    def score_options(self, request: OptionScoreRequest) -> OptionScores:
        """Log-probability of each label as the first token of the assistant's reply, over the full
        vocabulary; ``probs`` renormalize them over the labels."""
        from llama_cpp import Llama

        messages = self._chat_messages(request.messages)
        start = time.perf_counter()
        with self._lock, _cancellable():
            ids = label_token_ids(
                lambda t: self._llm.tokenize(t.encode("utf-8"), add_bos=False, special=False), request.labels
            )
            llm = self.scoring_context()
            tokens = self._prompt_tokens(llm, messages)
            logits, reused = self._last_logits(llm, tokens)
            self._tally_prompt(reused, len(tokens) - reused)
        logprobs = [float(lp) for lp in Llama.logits_to_logprobs(logits)[ids]]
        return OptionScores(
            labels=list(request.labels),
            probs=label_probs(logprobs),
            logprobs=list[float | None](logprobs),
            method="logprobs",
            model=self.model_id,
            usage=Usage(prompt_tokens=len(tokens), prompt_tokens_reused=reused),
            seconds=time.perf_counter() - start,
        )
