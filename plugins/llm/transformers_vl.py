"""Qwen2-VL / Qwen2.5-VL through transformers: real pixels in, batched generation across requests.

``TransformersVLLM`` loads the native ``Qwen2VLForConditionalGeneration`` / ``Qwen2_5_VLForConditionalGeneration``
classes (never ``trust_remote_code``) with their ``AutoProcessor``: the chat template places every image of
every message, the processor turns each image into patches and expands its ``<|image_pad|>`` to the
image's token count. ``generate_batch`` left-pads a batch of requests and runs ONE ``generate`` call for it,
so each decoding step is one forward pass for the whole batch.

JSON output: requests with a ``json_schema`` get their reply parsed (code fences and prose tolerated),
repaired when it was cut off (open strings and brackets closed) and validated against the schema;
``Generation.data`` holds the object only when it validates. Re-asking is the caller's job.

``QwenVLChatLLM`` is the legacy Qwen-VL-Chat (its own modelling code from the model repo): it refuses to
load unless ``trust_remote_code=True`` is passed and transformers is in the range that code works with.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from coe.errors import ConfigError, InputError

from .protocol import (Generation, GenerationRequest, ImageRef, Message, OptionScoreRequest, OptionScores, Usage,
                       parse_json_text)

NATIVE_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")
_DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16",
           "half": "float16", "fp32": "float32", "float32": "float32", "float": "float32"}
_MAX_IMAGE_PIXELS = 40_000_000


# --- small helpers --------------------------------------------------------------------------------

def _version(dist: str) -> tuple[int, ...]:
    from importlib.metadata import version

    parts = []
    for p in version(dist).split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _torch_dtype(dtype: Any, device: str):
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        if device.startswith("cuda") and torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    name = _DTYPES.get(str(dtype).lower())
    if name is None:
        raise ConfigError(f"unknown dtype {dtype!r}; use bf16, fp16, fp32 or auto")
    return getattr(torch, name)


def load_pil(ref: ImageRef):
    """An ``ImageRef`` (path or bytes) as an RGB PIL image; transparent areas become white."""
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(ref.read_bytes()))
        if img.width * img.height > _MAX_IMAGE_PIXELS:
            raise ConfigError(f"image of {img.width}x{img.height} pixels is over the "
                              f"{_MAX_IMAGE_PIXELS} pixel limit")
        img.load()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"unreadable image ({type(exc).__name__}: {exc})") from None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def repair_json_text(text: str) -> str | None:
    """Close what a reply cut off by the token limit left open. A string that never closed is dropped
    with its key (a half-written value is not an answer; callers re-ask or salvage from the text), as
    are a dangling comma, colon or key; then the open arrays and objects are closed. None when the text
    has no JSON start at all."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return None
    s = text[min(starts):]
    stack: list[str] = []
    in_string = escaped = False
    string_start = 0
    for i, ch in enumerate(s):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string, string_start = True, i
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if stack:
                stack.pop()
            if not stack:
                return s[: i + 1]
    body = s[:string_start] if in_string else s
    while True:
        body = body.rstrip()
        if body.endswith(","):
            body = body[:-1]
        elif body.endswith(":"):
            q = body.rfind('"', 0, len(body) - 2)  # the key's opening quote
            body = body[:q] if q >= 0 else body[:-1]
        elif stack and stack[-1] == "}" and body.endswith('"'):
            q = body.rfind('"', 0, len(body) - 1)  # a key without its value: drop it
            if q < 0 or not body[:q].rstrip().endswith((",", "{")):
                break
            body = body[:q]
        else:
            break
    return body + "".join(reversed(stack))


def parse_and_validate(text: str, schema: dict | None) -> tuple[Any, list[str]]:
    """The reply's JSON (repaired if cut off) and the schema problems; data is None if none fit."""
    import jsonschema

    problems: list[str] = []
    candidates = [text]
    repaired = repair_json_text(text)
    if repaired is not None and repaired != text:
        candidates.append(repaired)
    for candidate in candidates:
        try:
            obj = parse_json_text(candidate)
        except ValueError as exc:
            problems.append(f"not JSON: {exc}")
            continue
        if schema is None:
            return obj, []
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(obj), key=lambda e: list(e.path))
        if not errors:
            return obj, []
        problems.extend(e.message for e in errors[:3])
    return None, problems


def _stop_at(text: str, stops: list[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


# --- processing without torchvision ----------------------------------------------------------------

class LightQwen2VLProcessor:
    """What ``Qwen2VLProcessor`` does for images, for installs where transformers' own processor cannot
    load (transformers 5 builds it with a torchvision video processor): the tokenizer, the PIL image
    processor, and the expansion of each ``<|image_pad|>`` to ``t*h*w / merge**2`` tokens."""

    image_token = "<|image_pad|>"

    def __init__(self, tokenizer, image_processor, chat_template: str | None, with_token_types: bool):
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.chat_template = chat_template
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.with_token_types = with_token_types

    def apply_chat_template(self, conversation, **kwargs):
        return self.tokenizer.apply_chat_template(conversation, chat_template=self.chat_template, **kwargs)

    def __call__(self, text: list[str], images=None, padding=True, return_tensors="pt"):
        from transformers import BatchFeature

        data: dict[str, Any] = {}
        if images:
            vision = self.image_processor(images=images, return_tensors=return_tensors)
            data.update(vision)
            merge = self.image_processor.merge_size ** 2
            counts = iter(int(g.prod()) // merge for g in vision["image_grid_thw"])
            marker = "<|placeholder|>"
            expanded = []
            for t in text:
                while self.image_token in t:
                    n = next(counts, None)
                    if n is None:
                        raise ValueError("the prompts hold more image placeholders than images were given")
                    t = t.replace(self.image_token, marker * n, 1)
                expanded.append(t.replace(marker, self.image_token))
            text = expanded
        enc = self.tokenizer(text, padding=padding, return_tensors=return_tensors)
        data.update(enc)
        if self.with_token_types:
            data["mm_token_type_ids"] = (enc["input_ids"] == self.image_token_id).int()
        return BatchFeature(data=data, tensor_type=return_tensors)

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)


def _chat_template_file(path: Path) -> str | None:
    for name in ("chat_template.jinja", "chat_template.json"):
        f = path / name
        if f.is_file():
            raw = f.read_text(encoding="utf-8")
            return json.loads(raw)["chat_template"] if name.endswith(".json") else raw
    return None


def _pil_image_processor(path: Path, pixels: dict):
    """The checkpoint's image processor in its PIL form (transformers 5: ``<Name>Pil``; 4.x: the plain class)."""
    import transformers

    try:
        conf = json.loads((path / "preprocessor_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        conf = {}
    base = (conf.get("image_processor_type") or "Qwen2VLImageProcessor").removesuffix("Fast").removesuffix("Pil")
    for name in (base + "Pil", "Qwen2VLImageProcessorPil", base, "Qwen2VLImageProcessor"):
        cls = getattr(transformers, name, None)
        if cls is None:
            continue
        try:
            return cls.from_pretrained(str(path), **pixels)
        except ImportError:
            continue
    raise ConfigError(f"no usable Qwen2-VL image processor in this transformers for {path}; "
                      "install torchvision")


def load_processor(path: Path, *, min_pixels: int | None = None, max_pixels: int | None = None,
                   with_token_types: bool = True):
    """transformers' ``AutoProcessor`` where it loads, else ``LightQwen2VLProcessor`` (no torchvision)."""
    from transformers import AutoProcessor, AutoTokenizer

    from .vl_random import QWEN2_VL_CHAT_TEMPLATE

    pixels = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
    try:
        processor = AutoProcessor.from_pretrained(str(path), trust_remote_code=False, **pixels)
    except ImportError as exc:
        if "torchvision" not in str(exc).lower():
            raise
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
        image_processor = _pil_image_processor(path, pixels)
        template = _chat_template_file(path) or QWEN2_VL_CHAT_TEMPLATE
        processor = LightQwen2VLProcessor(tokenizer, image_processor, template, with_token_types)
    if getattr(processor, "chat_template", None) is None:
        processor.chat_template = QWEN2_VL_CHAT_TEMPLATE
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"  # decoder-only batches are padded on the left
    if tokenizer.pad_token is None:
        tokenizer.pad_token = "<|endoftext|>"
    return processor


def adapter_base(spec: str | os.PathLike) -> str | None:
    """The base model a peft adapter directory was trained on, or None when ``spec`` is no adapter."""
    path = Path(spec).expanduser()
    conf = path / "adapter_config.json"
    if not path.is_dir() or not conf.is_file() or (path / "config.json").is_file():
        return None
    try:
        base = json.loads(conf.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"unreadable adapter_config.json in {path}: {exc}") from None
    if not base:
        raise ConfigError(f"{conf} names no base model (base_model_name_or_path); pass the base model "
                          "and the adapter separately")
    return str(base)


def adapter_label(adapter: str | os.PathLike) -> str:
    """The adapter's folder name and a digest of its weights: results of two trainings never share a
    cache key, however their folders are named."""
    import hashlib

    path = Path(adapter).expanduser()
    digest = hashlib.sha256()
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        f = path / name
        if f.is_file():
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            break
    return f"{path.resolve().name}-{digest.hexdigest()[:8]}"


def load_model(path: Path, *, dtype, device: str, device_map: Any = None, load_in_4bit: bool = False,
               attn_implementation: str | None = None, label: str | None = None):
    """A native Qwen2-VL / Qwen2.5-VL checkpoint (never remote code), on ``device`` or per ``device_map``.
    4-bit (bitsandbytes NF4) quantizes the language model only: the vision tower and ``lm_head`` stay
    in ``dtype``."""
    import transformers

    label = label or path.name
    model_type = _model_type(path)
    if model_type not in NATIVE_MODEL_TYPES:
        if model_type == "qwen":
            raise ConfigError(f"{label} is the legacy Qwen-VL-Chat, which runs the model repo's own code; "
                              "use the qwen-vl-chat plugin (QwenVLChatLLM) with trust_remote_code=True")
        raise ConfigError(f"{label}: model_type {model_type!r} is not a Qwen2-VL model "
                          f"({', '.join(NATIVE_MODEL_TYPES)})")
    kwargs: dict[str, Any] = {"trust_remote_code": False}
    kwargs["dtype" if _version("transformers") >= (4, 56) else "torch_dtype"] = dtype
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if load_in_4bit:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ConfigError("4-bit loading needs bitsandbytes (pip install bitsandbytes) "
                              "and a CUDA GPU") from None
        kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype, llm_int8_skip_modules=["visual", "lm_head"])
        device_map = device_map or "auto"
    if device_map is not None:
        kwargs["device_map"] = device_map
    cls = (transformers.Qwen2_5_VLForConditionalGeneration if model_type == "qwen2_5_vl"
           else transformers.Qwen2VLForConditionalGeneration)
    model = cls.from_pretrained(str(path), **kwargs)
    if device_map is None:
        model.to(device)
    return model


# --- the plugin -------------------------------------------------------------------------------------

class TransformersVLLM:
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

    def __init__(self, model: str | os.PathLike = "qwen2-vl-2b", *, model_id: str | None = None,
                 dtype: Any = "auto", device: str | None = None, device_map: Any = None,
                 load_in_4bit: bool = False, adapter: str | os.PathLike | None = None,
                 attn_implementation: str | None = None, max_batch_size: int = 16,
                 min_pixels: int | None = None, max_pixels: int | None = None, json_hint: bool = False,
                 ignore_eos: bool = False, model_path: str | os.PathLike | None = None,
                 graph_decode: bool | None = None) -> None:
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise ConfigError("the transformers backend needs `pip install 'coe[vlm]'`") from exc
        spec = str(model_path or model)
        base = adapter_base(spec)
        if base is not None:  # a trained adapter directory: its base model plus the adapter
            adapter, spec = adapter or spec, base
        from coe.modelstore.hub import resolve_vlm

        name, path = resolve_vlm(spec)
        self.model_id = model_id or (f"{name}+{adapter_label(adapter)}" if adapter is not None else name)
        self.model_path = path
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = _torch_dtype(dtype, self.device)
        self.max_batch_size = max(1, int(max_batch_size))
        self.json_hint = json_hint
        self._lock = threading.Lock()
        self.model = load_model(path, dtype=self.dtype, device=self.device, device_map=device_map,
                                load_in_4bit=load_in_4bit, attn_implementation=attn_implementation,
                                label=name)
        if device_map is not None or load_in_4bit:
            self.device = str(next(self.model.parameters()).device)
        processor = load_processor(path, min_pixels=min_pixels, max_pixels=max_pixels,
                                   with_token_types=_takes_token_types(self.model))
        self._setup(self.model, processor, ignore_eos=ignore_eos, graph_decode=graph_decode)
        if adapter is not None:
            self.load_adapter(adapter)

    @classmethod
    def from_parts(cls, model, processor, *, model_id: str = "qwen2-vl", max_batch_size: int = 16,
                   json_hint: bool = False, ignore_eos: bool = False,
                   graph_decode: bool | None = None) -> "TransformersVLLM":
        """Wrap a model and processor already in memory (benchmarks, tests): no loading, no hub."""
        self = cls.__new__(cls)
        self.model_id, self.model_path = model_id, None
        self.device = str(next(model.parameters()).device)
        self.dtype = next(model.parameters()).dtype
        self.max_batch_size, self.json_hint = max(1, int(max_batch_size)), json_hint
        self._lock = threading.Lock()
        tokenizer = processor.tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = "<|endoftext|>"
        self._setup(model, processor, ignore_eos=ignore_eos, graph_decode=graph_decode)
        return self

    def _setup(self, model, processor, *, ignore_eos: bool, graph_decode: bool | None = None) -> None:
        from . import graph_decode as gd

        self.model = model.eval()
        # One greedy sequence decodes through a captured CUDA graph (graph_decode.py); None: on CUDA only.
        on_cuda = str(next(model.parameters()).device).startswith("cuda")
        self.graph_decode = (on_cuda if graph_decode is None else graph_decode) and gd.supported(model)
        self._decoders: dict[int, Any] = {}
        self.graph_compile_mode: str | None = None  # torch.compile mode of the decode step (None: default)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.ignore_eos = ignore_eos  # decode exactly max_tokens (benchmarks)
        self._eos_ids = self._eos_token_ids()
        self._base_model = self.model
        self.adapter: str | None = None

    # -- adapters --

    def load_adapter(self, adapter: str | os.PathLike) -> None:
        """Apply a LoRA adapter directory (peft) on top of the base weights."""
        try:
            from peft import PeftModel
        except ImportError:
            raise ConfigError("LoRA adapters need peft (pip install 'coe[vlm]')") from None
        if self.adapter is not None:
            self.unload_adapter()
        path = Path(adapter).expanduser()
        if not (path / "adapter_config.json").is_file():
            raise ConfigError(f"not a peft adapter directory (no adapter_config.json): {path}")
        self.model = PeftModel.from_pretrained(self._base_model, str(path), is_trainable=False).eval()
        self.adapter = str(path)

    def unload_adapter(self) -> None:
        """Remove the adapter's layers; the base weights are untouched, so outputs return to the base model's."""
        if self.adapter is None:
            return
        self._base_model = self.model.unload()
        self.model = self._base_model.eval()
        self.adapter = None

    def save_merged(self, out_dir: str | os.PathLike) -> Path:
        """Fold the loaded adapter into the base weights and save a standalone checkpoint (model and
        processor) that loads without peft."""
        from .vl_random import save_processor

        if self.adapter is None:
            raise ConfigError("no adapter is loaded: nothing to merge")
        out = Path(out_dir).expanduser()
        if out.exists() and any(out.iterdir()):
            raise InputError(f"{out} exists and is not empty; choose a new directory")
        tmp = out.with_name(out.name + ".partial")
        merged = self.model.merge_and_unload()
        merged.save_pretrained(tmp)
        save_processor(self.processor, tmp)
        if out.exists():
            out.rmdir()
        tmp.replace(out)
        self.model = self._base_model = merged.eval()
        self.adapter, self._decoders = None, {}
        return out

    # -- generation --

    def _eos_token_ids(self) -> list[int]:
        ids = []
        for tok in ("<|im_end|>", "<|endoftext|>"):
            i = self.tokenizer.convert_tokens_to_ids(tok)
            if isinstance(i, int) and i >= 0 and self.tokenizer.convert_ids_to_tokens(i) == tok:
                ids.append(i)
        cfg = self.model.generation_config.eos_token_id
        for i in (cfg if isinstance(cfg, list) else [cfg] if cfg is not None else []):
            if i not in ids:
                ids.append(i)
        return [i for i in ids if isinstance(i, int)]

    def conversation(self, request: GenerationRequest) -> tuple[list[dict], list]:
        """Chat-template messages (images first in each message, as Qwen2-VL was trained) and the images."""
        messages: list[dict] = []
        images = []
        last_user = max((i for i, m in enumerate(request.messages) if m.role == "user"), default=-1)
        for i, m in enumerate(request.messages):
            text = m.content
            if i == last_user and request.json_schema is not None and self.json_hint:
                text += ("\n\nReply with one JSON object that follows this JSON schema: "
                         + json.dumps(request.json_schema, separators=(",", ":")))
            content: list[dict] = [{"type": "image"} for _ in m.images]
            images.extend(load_pil(img) for img in m.images)
            content.append({"type": "text", "text": text})
            messages.append({"role": m.role, "content": content})
        return messages, images

    def encode(self, requests: list[GenerationRequest]):
        """Left-padded model inputs for a batch of requests (one processor call)."""
        texts, images = [], []
        for r in requests:
            conv, imgs = self.conversation(r)
            texts.append(self.processor.apply_chat_template(conv, tokenize=False, add_generation_prompt=True))
            images.extend(imgs)
        inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        return inputs.to(self.device)

    def _generate_kwargs(self, requests: list[GenerationRequest]) -> dict[str, Any]:
        first = requests[0]
        kwargs: dict[str, Any] = {"max_new_tokens": max(r.max_tokens for r in requests),
                                  "pad_token_id": self.tokenizer.pad_token_id, "eos_token_id": self._eos_ids}
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
            if bucket not in self._decoders:
                self._decoders[bucket] = GraphDecoder(self.model, bucket, compile_mode=self.graph_compile_mode)
            ids = self._decoders[bucket].generate(inputs, request.max_tokens, eos_token_ids=self._eos_ids,
                                                  ignore_eos=self.ignore_eos,
                                                  repetition_penalty=request.repeat_penalty or 1.0)
        except Exception as exc:  # compile or capture failure on an unusual setup: fall back for good
            import warnings
            warnings.warn(f"graph decoding disabled ({type(exc).__name__}: {exc}); using generate()")
            self.graph_decode, self._decoders = False, {}
            return None
        return torch.cat([inputs["input_ids"], torch.tensor([ids], device=inputs["input_ids"].device)], dim=1)

    def _run(self, requests: list[GenerationRequest]) -> list[Generation]:
        import torch

        start = time.perf_counter()
        with self._lock:
            inputs = self.encode(requests)
            kwargs = self._generate_kwargs(requests)
            out = None
            if self.graph_decode and len(requests) == 1 and not kwargs["do_sample"] and self.adapter is None:
                out = self._graph_decode(inputs, requests[0])
            if out is None:
                if kwargs["do_sample"] and requests[0].seed is not None:
                    torch.manual_seed(requests[0].seed)  # one RNG stream for the batch
                with torch.inference_mode():
                    out = self.model.generate(**inputs, **kwargs)
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
            text, stopped = _stop_at(text, request.stop)
            if stopped:
                finish = "stop"
            data = None
            if request.json_schema is not None:
                data, _ = parse_and_validate(text, request.json_schema)
            results.append(Generation(text=text, data=data, seconds=seconds / len(requests),
                                      model=self.model_id, finish_reason=finish,
                                      usage=Usage(prompt_tokens=int(prompt_tokens[row]),
                                                  completion_tokens=len(ids))))
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
                chunk = idxs[k:k + self.max_batch_size]
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

        return score_options(self, request)


def _takes_token_types(model) -> bool:
    """transformers 5 models want ``mm_token_type_ids`` next to ``input_ids``; 4.x models reject it."""
    import inspect

    return "mm_token_type_ids" in inspect.signature(model.forward).parameters


def _model_type(path: Path) -> str | None:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"unreadable config.json in {path}: {exc}") from None


# --- legacy Qwen-VL-Chat ------------------------------------------------------------------------------

class QwenVLChatLLM:
    """The first Qwen-VL-Chat (``Qwen/Qwen-VL-Chat``), whose modelling code lives in the model repo.

    Loading it runs that code, so it is refused unless ``trust_remote_code=True`` is given. The code was
    written for transformers 4.32-4.44 (``transformers>=4.32,<4.45``; later releases changed the
    generation and cache internals it uses); outside that range loading is refused too: install it in
    a separate environment, or use the native Qwen2-VL models (``TransformersVLLM``)."""

    name = "qwen-vl-chat"
    supports_images = True
    supports_json_schema = True
    TRANSFORMERS_RANGE = ((4, 32), (4, 45))  # [min, max)

    def __init__(self, model: str | os.PathLike = "qwen-vl-chat", *, trust_remote_code: bool = False,
                 model_id: str | None = None, dtype: Any = "auto", device: str | None = None,
                 device_map: Any = None, model_path: str | os.PathLike | None = None) -> None:
        if trust_remote_code is not True:
            raise ConfigError("Qwen-VL-Chat runs Python code shipped with the model; pass "
                              "trust_remote_code=True to allow it (it is never enabled by default)")
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise ConfigError("Qwen-VL-Chat needs torch and transformers>=4.32,<4.45") from exc
        installed = _version("transformers")
        low, high = self.TRANSFORMERS_RANGE
        if not (low <= installed[:2] < high):
            raise ConfigError(f"Qwen-VL-Chat's remote code needs transformers>=4.32,<4.45 (4.32-4.44); "
                              f"installed is {transformers.__version__}. Use a separate environment with "
                              "`pip install 'transformers>=4.32,<4.45' tiktoken transformers_stream_generator "
                              "einops`, or the native Qwen2-VL models (transformers-vl plugin)")
        from coe.modelstore.hub import resolve_vlm

        name, path = resolve_vlm(str(model_path or model))
        self.model_id = model_id or name
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dt = _torch_dtype(dtype, self.device)
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
                text, _ = self.model.chat(self.tokenizer, query=pending, history=history, system=system,
                                          max_new_tokens=request.max_tokens,
                                          do_sample=request.temperature > 0,
                                          temperature=request.temperature or None, top_p=request.top_p)
        text, _ = _stop_at(text, request.stop)
        data = parse_and_validate(text, request.json_schema)[0] if request.json_schema is not None else None
        return Generation(text=text, data=data, seconds=time.perf_counter() - start, model=self.model_id,
                          usage=Usage(completion_tokens=len(self.tokenizer.encode(text))))

    def generate_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        return [self.generate(r) for r in requests]
