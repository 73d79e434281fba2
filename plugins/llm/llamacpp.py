"""llama.cpp backend (GGUF on CPU) with JSON-schema constrained decoding through llama.cpp grammars."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from coe.errors import ConfigError

from .protocol import Generation, GenerationRequest, SequentialBatchMixin, Usage, schema_data


class LlamaCppLLM(SequentialBatchMixin):
    """Text-only: the GGUF chat models we ship have no vision projector, so images arrive as text."""

    name = "llamacpp"
    supports_images = False
    supports_json_schema = True

    def __init__(self, model_path: str | os.PathLike, *, model_id: str | None = None, n_ctx: int = 4096,
                 n_threads: int | None = None, seed: int = 0, verbose: bool = False) -> None:
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
        self._llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads or os.cpu_count() or 1,
                          seed=seed, verbose=verbose)

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def generate(self, request: GenerationRequest) -> Generation:
        if any(m.images for m in request.messages):
            raise ConfigError("the llama.cpp backend has no vision input; describe images as text")
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        kwargs: dict = {}
        if request.json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
        if request.seed is not None:
            kwargs["seed"] = request.seed
        start = time.perf_counter()
        with self._lock:
            out = self._llm.create_chat_completion(
                messages=messages, max_tokens=request.max_tokens, temperature=request.temperature,
                top_p=request.top_p, repeat_penalty=request.repeat_penalty, stop=request.stop or None, **kwargs)
        seconds = time.perf_counter() - start
        choice = out["choices"][0]
        text = choice["message"].get("content") or ""
        data = schema_data(text, request.json_schema)
        usage = out.get("usage") or {}
        return Generation(text=text, data=data, seconds=seconds, model=self.model_id,
                          finish_reason=choice.get("finish_reason"),
                          usage=Usage(prompt_tokens=usage.get("prompt_tokens", 0),
                                      completion_tokens=usage.get("completion_tokens", 0)))
