"""Loading Qwen2-VL / Qwen2.5-VL weights: dtype names, the native model classes (never remote code),
4-bit quantization, and LoRA adapters (peft) applied, removed and merged on a loaded model."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.version import Version

from coe.errors import ConfigError, InputError

from .transformers_processing import save_processor

NATIVE_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")
_DTYPES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
}


def transformers_at_least(version: str) -> bool:
    """Whether the installed transformers is ``version`` or later; a dev or rc build counts as its release
    (the API it changed is already in those builds)."""
    return Version(metadata.version("transformers")).release >= Version(version).release


def torch_dtype(dtype: Any, device: str):
    """A torch dtype from a name (bf16, fp16, fp32, auto: bf16/fp16 on CUDA, fp32 elsewhere) or a dtype."""
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


def takes_token_types(model) -> bool:
    """transformers 5 models want ``mm_token_type_ids`` next to ``input_ids``; 4.x models reject it."""
    return "mm_token_type_ids" in inspect.signature(model.forward).parameters


def _model_type(path: Path) -> str | None:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"unreadable config.json in {path}: {exc}") from None


def load_model(
    path: Path,
    *,
    dtype,
    device: str,
    device_map: Any = None,
    load_in_4bit: bool = False,
    attn_implementation: str | None = None,
    label: str | None = None,
):
    """A native Qwen2-VL / Qwen2.5-VL checkpoint (never remote code), on ``device`` or per ``device_map``.
    4-bit (bitsandbytes NF4) quantizes the language model only: the vision tower and ``lm_head`` stay
    in ``dtype``."""
    import transformers

    label = label or path.name
    model_type = _model_type(path)
    if model_type not in NATIVE_MODEL_TYPES:
        if model_type == "qwen":
            raise ConfigError(
                f"{label} is the legacy Qwen-VL-Chat, which runs the model repo's own code; "
                "use the qwen-vl-chat plugin (QwenVLChatLLM) with trust_remote_code=True"
            )
        raise ConfigError(
            f"{label}: model_type {model_type!r} is not a Qwen2-VL model ({', '.join(NATIVE_MODEL_TYPES)})"
        )
    kwargs: dict[str, Any] = {"trust_remote_code": False}
    kwargs["dtype" if transformers_at_least("4.56") else "torch_dtype"] = dtype
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if load_in_4bit:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ConfigError("4-bit loading needs bitsandbytes (pip install bitsandbytes) and a CUDA GPU") from None
        kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            llm_int8_skip_modules=["visual", "lm_head"],
        )
        device_map = device_map or "auto"
    if device_map is not None:
        kwargs["device_map"] = device_map
    cls = (
        transformers.Qwen2_5_VLForConditionalGeneration
        if model_type == "qwen2_5_vl"
        else transformers.Qwen2VLForConditionalGeneration
    )
    model = cls.from_pretrained(str(path), **kwargs)
    if device_map is None:
        model.to(device)
    return model


# --- LoRA adapters --------------------------------------------------------------------------------


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
        raise ConfigError(
            f"{conf} names no base model (base_model_name_or_path); pass the base model and the adapter separately"
        )
    return str(base)


def adapter_label(adapter: str | os.PathLike) -> str:
    """The adapter's folder name and a digest of its weights: results of two trainings never share a
    cache key, however their folders are named."""
    path = Path(adapter).expanduser()
    digest = hashlib.sha256()
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        f = path / name
        if f.is_file():
            with f.open("rb") as fh:
                digest = hashlib.file_digest(fh, "sha256")
            break
    return f"{path.resolve().name}-{digest.hexdigest()[:8]}"


def eos_token_ids(tokenizer, model) -> list[int]:
    """The chat template's end tokens the tokenizer really has, then the generation config's own."""
    ids = []
    for tok in ("<|im_end|>", "<|endoftext|>"):
        i = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(i, int) and i >= 0 and tokenizer.convert_ids_to_tokens(i) == tok:
            ids.append(i)
    cfg = model.generation_config.eos_token_id
    for i in cfg if isinstance(cfg, list) else [cfg] if cfg is not None else []:
        if i not in ids:
            ids.append(i)
    return [i for i in ids if isinstance(i, int)]


class AdapterMethods:
    """LoRA adapters on a plugin holding ``model`` (what runs), ``_base_model`` (the weights without an
    adapter), ``adapter`` (its directory or None), ``processor`` and ``graph_decoders`` (by length bucket)."""

    model: Any
    _base_model: Any
    adapter: str | None
    processor: Any
    graph_decoders: dict

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
        self.adapter, self.graph_decoders = None, {}
        return out
