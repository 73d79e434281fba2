"""Random-weight Qwen2-VL / Qwen2.5-VL checkpoints built locally, for tests and benchmarks.

Nothing is downloaded: the tokenizer is read from a local Qwen2 GGUF file (its vocabulary is the one the
Qwen2-VL models use) or from a saved tokenizer directory, the image processor is configured from scratch,
and the weights are random. The result is a real checkpoint directory that loads through
``TransformersVLLM`` exactly as a downloaded model does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .transformers_loading import transformers_at_least
from .transformers_processing import QWEN2_VL_CHAT_TEMPLATE, LightQwen2VLProcessor, save_processor

# The Qwen2-VL special tokens. Qwen2 text tokenizers carry them in their vocabulary (ids 151646-151656)
# but not always as special tokens, and then "<|image_pad|>" would be split into pieces.
VL_SPECIAL_TOKENS = (
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Text and vision shapes. "7b" is Qwen2-VL-7B-Instruct's architecture; "tiny" runs on a CPU in ms.
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        mrope_section=[2, 3, 3],
        vision=dict(depth=2, embed_dim=32, num_heads=2, mlp_ratio=2),
        vision_25=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, window_size=56, fullatt_block_indexes=[1]
        ),
    ),
    "7b": dict(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        mrope_section=[16, 24, 24],
        vision=dict(depth=32, embed_dim=1280, num_heads=16, mlp_ratio=4),
        vision_25=dict(
            depth=32,
            hidden_size=1280,
            intermediate_size=3420,
            num_heads=16,
            window_size=112,
            fullatt_block_indexes=[7, 15, 23, 31],
        ),
    ),
}


def load_qwen2_tokenizer(source: str | os.PathLike):
    """A Qwen2 tokenizer from a ``.gguf`` file or a tokenizer directory, with the VL special tokens."""
    from transformers import AddedToken, AutoTokenizer

    path = Path(source)
    if path.is_file():
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    else:
        tok = AutoTokenizer.from_pretrained(str(path))
    missing = [t for t in VL_SPECIAL_TOKENS if t not in tok.get_added_vocab()]
    if missing:
        tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
    tok.chat_template = QWEN2_VL_CHAT_TEMPLATE
    if tok.pad_token is None:
        tok.pad_token = "<|endoftext|>"
    return tok


def image_processor(family: str, min_pixels: int, max_pixels: int):
    import transformers
    from transformers.utils import is_torchvision_available

    names = ["Qwen2VLImageProcessor"] if is_torchvision_available() else []
    names += ["Qwen2VLImageProcessorPil", "Qwen2VLImageProcessor"]  # 5.x PIL class; 4.x slow class
    for name in names:
        cls = getattr(transformers, name, None)
        if cls is not None:
            try:
                return cls(
                    min_pixels=min_pixels, max_pixels=max_pixels, patch_size=14, temporal_patch_size=2, merge_size=2
                )
            except ImportError:  # torchvision-backed class without torchvision
                continue
    raise RuntimeError("this transformers has no Qwen2-VL image processor")


def build_processor(
    tokenizer, family: str = "qwen2_vl", *, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280
):
    """A Qwen2-VL (or Qwen2.5-VL) processor around ``tokenizer`` with an image processor made here.

    transformers 5 builds its processor with a torchvision video processor; without torchvision the
    plugin's own ``LightQwen2VLProcessor`` stands in (same token expansion, PIL image processing)."""
    import transformers

    processor = image_processor(family, min_pixels, max_pixels)
    cls = transformers.Qwen2_5_VLProcessor if family == "qwen2_5_vl" else transformers.Qwen2VLProcessor
    try:
        from transformers.utils import is_torchvision_available

        if is_torchvision_available() and hasattr(transformers, "Qwen2VLVideoProcessor"):
            video = transformers.Qwen2VLVideoProcessor(min_pixels=min_pixels, max_pixels=max_pixels)
            return cls(
                image_processor=processor,
                tokenizer=tokenizer,
                video_processor=video,
                chat_template=QWEN2_VL_CHAT_TEMPLATE,
            )
        return cls(image_processor=processor, tokenizer=tokenizer, chat_template=QWEN2_VL_CHAT_TEMPLATE)
    except (TypeError, ValueError, ImportError):
        return LightQwen2VLProcessor(tokenizer, processor, QWEN2_VL_CHAT_TEMPLATE, with_token_types=True)


def make_config(family: str = "qwen2_vl", shape: str = "tiny", *, vocab_size: int = 151936, **overrides):
    """A ``Qwen2VLConfig`` / ``Qwen2_5_VLConfig`` of the named shape (token ids as in the real models)."""
    import transformers

    s = SHAPES[shape]
    text = dict(
        vocab_size=vocab_size,
        hidden_size=s["hidden_size"],
        intermediate_size=s["intermediate_size"],
        num_hidden_layers=s["num_hidden_layers"],
        num_attention_heads=s["num_attention_heads"],
        num_key_value_heads=s["num_key_value_heads"],
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        hidden_act="silu",
        bos_token_id=151643,
        eos_token_id=151645,
        rope_parameters={"rope_type": "default", "mrope_section": s["mrope_section"], "rope_theta": 1000000.0},
    )
    text.update(overrides)
    if family == "qwen2_5_vl":
        vision = dict(
            s["vision_25"],
            out_hidden_size=s["hidden_size"],
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            in_channels=3,
            hidden_act="silu",
        )
        cls = transformers.Qwen2_5_VLConfig
    else:
        vision = dict(
            s["vision"],
            hidden_size=s["hidden_size"],
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            in_channels=3,
        )
        cls = transformers.Qwen2VLConfig
    ids = dict(image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653)
    return cls(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)


def model_class(family: str):
    import transformers

    return (
        transformers.Qwen2_5_VLForConditionalGeneration
        if family == "qwen2_5_vl"
        else transformers.Qwen2VLForConditionalGeneration
    )


def random_model(config, *, dtype=None, device=None, seed: int = 0):
    """Random weights from ``config``; on ``device`` directly (fast GPU init, no CPU round trip)."""
    import torch

    torch.manual_seed(seed)
    cls = model_class(config.model_type)
    previous = torch.get_default_dtype()
    try:
        if dtype is not None:
            torch.set_default_dtype(dtype)
        with torch.device(device or "cpu"):
            if transformers_at_least("4.56"):
                model = cls._from_config(config, dtype=dtype)
            else:
                model = cls._from_config(config, torch_dtype=dtype)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def save_random_checkpoint(
    out_dir: str | os.PathLike,
    tokenizer,
    *,
    family: str = "qwen2_vl",
    shape: str = "tiny",
    seed: int = 0,
    min_pixels: int = 56 * 56,
    max_pixels: int = 28 * 28 * 1280,
) -> Path:
    """Write a loadable random checkpoint (config, safetensors weights, processor) to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = make_config(family, shape, vocab_size=len(tokenizer))
    model = random_model(config, seed=seed)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = [151645, 151643]
    model.save_pretrained(out)
    save_processor(build_processor(tokenizer, family, min_pixels=min_pixels, max_pixels=max_pixels), out)
    return out
