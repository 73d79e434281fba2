"""``QwenVLChatLLM``: the legacy Qwen-VL-Chat, whose modelling code ships with the model repo.

It refuses to load unless ``trust_remote_code=True`` is passed and transformers is in the range that
code works with; replies go through the same stop strings and JSON repair as ``TransformersVLLM``.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet

from coe.errors import ConfigError

from .protocol import Generation, GenerationRequest, Message, Usage
from .transformers_loading import torch_dtype
from .transformers_processing import load_pil
from .reply import parse_and_validate, stop_at


class QwenVLChatLLM:
    """The first Qwen-VL-Chat (``Qwen/Qwen-VL-Chat``), whose modelling code lives in the model repo.

    Loading it runs that code, so it is refused unless ``trust_remote_code=True`` is given. The code was
    written for transformers 4.32-4.44 (``transformers>=4.32,<4.45``; later releases changed the
    generation and cache internals it uses); outside that range loading is refused too: install it in
    a separate environment, or use the native Qwen2-VL models (``TransformersVLLM``)."""

    name = "qwen-vl-chat"
    supports_images = True
    supports_json_schema = True
    TRANSFORMERS_RANGE = SpecifierSet(">=4.32,<4.45")

    def __init__(
        self,
        model: str | os.PathLike = "qwen-vl-chat",
        *,
        trust_remote_code: bool = False,
        model_id: str | None = None,
        dtype: Any = "auto",
        device: str | None = None,
        device_map: Any = None,
        model_path: str | os.PathLike | None = None,
    ) -> None:
        if trust_remote_code is not True:
            raise ConfigError(
                "Qwen-VL-Chat runs Python code shipped with the model; pass "
                "trust_remote_code=True to allow it (it is never enabled by default)"
            )
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise ConfigError("Qwen-VL-Chat needs torch and transformers>=4.32,<4.45") from exc
        if not self.TRANSFORMERS_RANGE.contains(metadata.version("transformers"), prereleases=True):
            raise ConfigError(
                f"Qwen-VL-Chat's remote code needs transformers>=4.32,<4.45 (4.32-4.44); "
                f"installed is {transformers.__version__}. Use a separate environment with "
                "`pip install 'transformers>=4.32,<4.45' tiktoken transformers_stream_generator "
                "einops`, or the native Qwen2-VL models (transformers-vl plugin)"
            )
        from coe.modelstore.hub import resolve_vlm

        name, path = resolve_vlm(str(model_path or model))
        self.model_id = model_id or name
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dt = torch_dtype(dtype, self.device)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), trust_remote_code=True)
        kwargs: dict[str, Any] = {"trust_remote_code": True, "torch_dtype": dt}
        if device_map is not None:
            kwargs["device_map"] = device_map
        self.model = transformers.AutoModelForCausalLM.from_pretrained(str(path), **kwargs).eval()
        if device_map is None:
            self.model.to(self.device)
        self._lock = threading.Lock()

    def generate(self, request: GenerationRequest) -> Generation:
        import torch

        start = time.perf_counter()
        system = "\n".join(m.content for m in request.messages if m.role == "system") or "You are a helpful assistant."
        turns = [m for m in request.messages if m.role != "system"]
        with tempfile.TemporaryDirectory(prefix="coe-qwenvl-") as tmp:

            def query_of(m: Message) -> str:
                parts = []
                for k, img in enumerate(m.images):
                    f = Path(tmp) / f"{id(m)}-{k}.png"
                    load_pil(img).save(f)
                    parts.append({"image": str(f)})
                parts.append({"text": m.content})
                return self.tokenizer.from_list_format(parts)

            history, pending = [], None
            for m in turns:
                if m.role == "user":
                    pending = query_of(m)
                elif pending is not None:
                    history.append((pending, m.content))
                    pending = None
            if pending is None:
                raise ConfigError("the last message for Qwen-VL-Chat must come from the user")
            if request.seed is not None:
                torch.manual_seed(request.seed)
            with self._lock, torch.inference_mode():
                text, _ = self.model.chat(
                    self.tokenizer,
                    query=pending,
                    history=history,
                    system=system,
                    max_new_tokens=request.max_tokens,
                    do_sample=request.temperature > 0,
                    temperature=request.temperature or None,
                    top_p=request.top_p,
                )
        text, _ = stop_at(text, request.stop)
        data = parse_and_validate(text, request.json_schema)[0] if request.json_schema is not None else None
        return Generation(
            text=text,
            data=data,
            seconds=time.perf_counter() - start,
            model=self.model_id,
            usage=Usage(completion_tokens=len(self.tokenizer.encode(text))),
        )

    def generate_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        return [self.generate(r) for r in requests]
