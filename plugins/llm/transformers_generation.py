"""``TransformersVLLM``: Qwen2-VL / Qwen2.5-VL through transformers, real pixels in, batched generation
across requests.

It loads the native ``Qwen2VLForConditionalGeneration`` / ``Qwen2_5_VLForConditionalGeneration`` classes
(never ``trust_remote_code``) with their processor: the chat template places every image of every
message, the processor turns each image into patches and expands its ``<|image_pad|>`` to the image's
token count. ``generate_batch`` left-pads a batch of requests and runs ONE ``generate`` call for it, so
each decoding step is one forward pass for the whole batch.

JSON output: requests with a ``json_schema`` get their reply parsed (code fences and prose tolerated),
repaired when it was cut off and validated against the schema (``reply``);
``Generation.data`` holds the object only when it validates. Re-asking is the caller's job.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from coe.errors import ConfigError

from .protocol import Generation, GenerationRequest, OptionScoreRequest, OptionScores, Usage
from .transformers_loading import (
    AdapterMethods,
    adapter_base,
    adapter_label,
    eos_token_ids,
    load_model,
    takes_token_types,
    torch_dtype,
)
from .transformers_processing import chat_messages, left_padded, load_processor
from .transformers_cancel import CancelMethods
from .reply import parse_and_validate, stop_at


class TransformersVLLM(AdapterMethods, CancelMethods):
    """``TransformersVLLM("qwen2-vl-2b" | "/path/to/local/checkpoint" | "Qwen/Qwen2-VL-2B-Instruct", ...)``.

    ``dtype``: bf16, fp16, fp32 or auto (bf16/fp16 on CUDA, fp32 on CPU). ``device_map`` goes to
    ``from_pretrained`` (accelerate); without it the model is moved to ``device``. ``load_in_4bit`` uses
    bitsandbytes (imported only then). ``adapter`` is a LoRA adapter directory loaded with peft;
    ``unload_adapter()`` removes it again. ``max_batch_size`` splits larger ``generate_batch`` calls;
    ``ignore_eos`` decodes exactly ``max_tokens`` per request (benchmarks). ``trust_remote_code`` is
    never used: these are transformers' own classes.
    """

    name = "transformers-vl"
    supports_images = True
    supports_json_schema = True  # validated parse + repair of the reply (no constrained decoding)
    native_batching = True  # generate_batch decodes many requests in one generate call (MicroBatchLLM pays off)

    def __init__(
        self,
        model: str | os.PathLike = "qwen2-vl-2b",
        *,
        model_id: str | None = None,
        dtype: Any = "auto",
        device: str | None = None,
        device_map: Any = None,
        load_in_4bit: bool = False,
        adapter: str | os.PathLike | None = None,
        attn_implementation: str | None = None,
        max_batch_size: int = 16,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        json_hint: bool = False,
        ignore_eos: bool = False,
        model_path: str | os.PathLike | None = None,
        graph_decode: bool | None = None,
    ) -> None:
        try:
            import torch
            import transformers  # noqa: F401  (the backend's dependency, checked here with torch)
        except ImportError as exc:
            raise ConfigError("the transformers backend needs `pip install 'coe[vlm]'`") from exc
        spec = str(model_path or model)
        base = adapter_base(spec)
        if base is not None:  # a trained adapter directory: its base model plus the adapter
            adapter, spec = adapter or spec, base
        from coe.modelstore.hub import resolve_vlm

        name, path = resolve_vlm(spec)
        self.model_id = model_id or (f"{name}+{adapter_label(adapter)}" if adapter is not None else name)
        self.model_path: Path | None = path  # None: built from_parts, from a model already in memory
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = torch_dtype(dtype, self.device)
        self.max_batch_size = max(1, int(max_batch_size))
        self.json_hint = json_hint
        # one forward pass on the model at a time: generation here, option scoring in transformers_scoring
        self.model_lock = threading.Lock()
        self.model = load_model(
            path,
            dtype=self.dtype,
            device=self.device,
            device_map=device_map,
            load_in_4bit=load_in_4bit,
            attn_implementation=attn_implementation,
            label=name,
        )
        if device_map is not None or load_in_4bit:
            self.device = str(next(self.model.parameters()).device)
        processor = load_processor(
            path, min_pixels=min_pixels, max_pixels=max_pixels, with_token_types=takes_token_types(self.model)
        )
        self._setup(self.model, processor, ignore_eos=ignore_eos, graph_decode=graph_decode)
        if adapter is not None:
            self.load_adapter(adapter)

    @classmethod
    def from_parts(
        cls,
        model,
        processor,
        *,
        model_id: str = "qwen2-vl",
        max_batch_size: int = 16,
        json_hint: bool = False,
        ignore_eos: bool = False,
        graph_decode: bool | None = None,
    ) -> TransformersVLLM:
        """Wrap a model and processor already in memory (benchmarks, tests): no loading, no hub."""
        self = cls.__new__(cls)
        self.model_id, self.model_path = model_id, None
        self.device = str(next(model.parameters()).device)
        self.dtype = next(model.parameters()).dtype
        self.max_batch_size, self.json_hint = max(1, int(max_batch_size)), json_hint
        self.model_lock = threading.Lock()
        left_padded(processor.tokenizer)
        self._setup(model, processor, ignore_eos=ignore_eos, graph_decode=graph_decode)
        return self

    def _setup(self, model, processor, *, ignore_eos: bool, graph_decode: bool | None = None) -> None:
        from . import graph_decode as gd

        self.model = model.eval()
        # One greedy sequence decodes through a captured CUDA graph (graph_decode.py); None: on CUDA only.
        on_cuda = str(next(model.parameters()).device).startswith("cuda")
        self.graph_decode = (on_cuda if graph_decode is None else graph_decode) and gd.supported(model)
        self.graph_decoders: dict[int, Any] = {}
        self.graph_compile_mode: str | None = None  # torch.compile mode of the decode step (None: default)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.ignore_eos = ignore_eos  # decode exactly max_tokens (benchmarks)
        self._eos_ids = eos_token_ids(self.tokenizer, self.model)
        self._base_model = self.model
        self.adapter: str | None = None
        self._init_cancel()

    # -- generation --

    def encode(self, requests: list[GenerationRequest]):
        """Left-padded model inputs for a batch of requests (one processor call)."""
        texts, images = [], []
        for r in requests:
            conv, imgs = chat_messages(r, json_hint=self.json_hint)
            texts.append(self.processor.apply_chat_template(conv, tokenize=False, add_generation_prompt=True))
            images.extend(imgs)
        inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        return inputs.to(self.device)

    def _generate_kwargs(self, requests: list[GenerationRequest]) -> dict[str, Any]:
        first = requests[0]
        kwargs: dict[str, Any] = {
            "max_new_tokens": max(r.max_tokens for r in requests),
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self._eos_ids,
        }
        if first.temperature > 0:
            kwargs.update(do_sample=True, temperature=first.temperature, top_p=first.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if self.ignore_eos:
            kwargs["min_new_tokens"] = kwargs["max_new_tokens"]
        if first.repeat_penalty and first.repeat_penalty != 1.0:
            kwargs["repetition_penalty"] = first.repeat_penalty
        return kwargs

    def _graph_decode(self, inputs, request: GenerationRequest):
        """New tokens by the CUDA-graph decoder, laid out as ``generate`` returns them; None when it cannot
        serve this request (it then stays off: ``generate`` is always correct)."""
        import torch

        from .graph_decode import GraphDecoder

        n = inputs["input_ids"].shape[1] + request.max_tokens
        bucket = -(-n // 512) * 512  # one cache (and one captured graph) serves every length up to it
        try:
            if bucket not in self.graph_decoders:
                self.graph_decoders[bucket] = GraphDecoder(self.model, bucket, compile_mode=self.graph_compile_mode)
            ids = self.graph_decoders[bucket].generate(
                inputs,
                request.max_tokens,
                eos_token_ids=self._eos_ids,
                ignore_eos=self.ignore_eos,
                repetition_penalty=request.repeat_penalty or 1.0,
            )
        except Exception as exc:  # compile or capture failure on an unusual setup: fall back for good
            import warnings

            warnings.warn(f"graph decoding disabled ({type(exc).__name__}: {exc}); using generate()")
            self.graph_decode, self.graph_decoders = False, {}
            return None
        return torch.cat([inputs["input_ids"], torch.tensor([ids], device=inputs["input_ids"].device)], dim=1)

    def _run(self, requests: list[GenerationRequest]) -> list[Generation]:
        import torch

        start = time.perf_counter()
        with self.model_lock:
            self._check_cancelled()  # also when cancelled while this batch waited for the model
            inputs = self.encode(requests)
            kwargs = self._generate_kwargs(requests)
            out = None
            if self.graph_decode and len(requests) == 1 and not kwargs["do_sample"] and self.adapter is None:
                out = self._graph_decode(inputs, requests[0])
            if out is None:
                if kwargs["do_sample"] and requests[0].seed is not None:
                    torch.manual_seed(requests[0].seed)  # one RNG stream for the batch
                with torch.inference_mode():
                    out = self.model.generate(**inputs, **kwargs, stopping_criteria=self._stop_when_cancelled)
        self._check_cancelled()  # a stopped generation is cut short, not a reply
        seconds = time.perf_counter() - start
        prompt_len = inputs["input_ids"].shape[1]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        eos = set(self._eos_ids) | {self.tokenizer.pad_token_id}
        results = []
        for row, request in enumerate(requests):
            ids = out[row, prompt_len:].tolist()[: request.max_tokens]
            finish = "length"
            for n, tok in enumerate(ids):
                if tok in eos:
                    ids, finish = ids[:n], "stop"
                    break
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            text, stopped = stop_at(text, request.stop)
            if stopped:
                finish = "stop"
            data = None
            if request.json_schema is not None:
                data, _ = parse_and_validate(text, request.json_schema)
            results.append(
                Generation(
                    text=text,
                    data=data,
                    seconds=seconds / len(requests),
                    model=self.model_id,
                    finish_reason=finish,
                    usage=Usage(prompt_tokens=int(prompt_tokens[row]), completion_tokens=len(ids)),
                )
            )
        return results

    @staticmethod
    def _group_key(r: GenerationRequest) -> tuple:
        if r.temperature > 0:
            return (True, r.temperature, r.top_p, r.repeat_penalty, r.seed)
        return (False, r.repeat_penalty)

    def generate(self, request: GenerationRequest) -> Generation:
        return self._run([request])[0]

    def generate_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        """One ``generate`` call per group of requests that share decoding settings (greedy requests
        always do), split into chunks of ``max_batch_size``. Under greedy decoding each reply is the
        one a single call gives; sampled rows of one chunk share one seeded RNG stream."""
        results: list[Generation | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            groups[self._group_key(r)].append(i)
        for idxs in groups.values():
            for k in range(0, len(idxs), self.max_batch_size):
                chunk = idxs[k : k + self.max_batch_size]
                for i, gen in zip(chunk, self._run([requests[i] for i in chunk])):
                    results[i] = gen
        return results  # type: ignore[return-value]

    def logits(self, request: GenerationRequest):
        """Next-token logits after the prompt (diagnostics and tests)."""
        from .transformers_scoring import last_logits

        return last_logits(self, request)[0]

    def score_options(self, request: OptionScoreRequest) -> OptionScores:
        """Each label's log-probability as the reply's first token, over the full vocabulary."""
        from .transformers_scoring import score_options

        self._check_cancelled()
        return score_options(self, request)
