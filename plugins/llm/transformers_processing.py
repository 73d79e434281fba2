"""Pictures and text into Qwen2-VL model inputs: images read as RGB, the chat template, and the processor
(transformers' own where it loads, else ``LightQwen2VLProcessor``, which needs no torchvision)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from coe.errors import ConfigError

from .protocol import GenerationRequest, ImageRef

# Qwen2-VL's chat template: images (and videos) become <|vision_start|><|image_pad|><|vision_end|>
# in message order; the processor expands each <|image_pad|> to the image's token count.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def load_pil(ref: ImageRef):
    """An ``ImageRef`` (path or bytes) as an RGB PIL image, read by ``coe.imageio``: size-bounded, transparent
    areas white, and a picture the item's earlier steps read is not decoded again."""
    from coe.imageio import load_image, load_image_bytes

    if ref.data is None and ref.path is not None:
        return load_image(ref.path)
    return load_image_bytes(ref.read_bytes())


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
            merge = self.image_processor.merge_size**2
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


def chat_messages(request: GenerationRequest, *, json_hint: bool = False) -> tuple[list[dict], list]:
    """Chat-template messages (images first in each message, as Qwen2-VL was trained) and the images;
    with ``json_hint`` the schema is spelled out after the last user message."""
    messages: list[dict] = []
    images: list[Any] = []  # PIL images (PIL is imported only where they are made)
    last_user = max((i for i, m in enumerate(request.messages) if m.role == "user"), default=-1)
    for i, m in enumerate(request.messages):
        text = m.content
        if i == last_user and request.json_schema is not None and json_hint:
            text += "\n\nReply with one JSON object that follows this JSON schema: " + json.dumps(
                request.json_schema, separators=(",", ":")
            )
        content: list[dict] = [{"type": "image"} for _ in m.images]
        images.extend(load_pil(img) for img in m.images)
        content.append({"type": "text", "text": text})
        messages.append({"role": m.role, "content": content})
    return messages, images


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
    raise ConfigError(f"no usable Qwen2-VL image processor in this transformers for {path}; install torchvision")


def left_padded(tokenizer) -> None:
    """Decoder-only batches are padded on the left, with ``<|endoftext|>`` where no pad token is set."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = "<|endoftext|>"


def load_processor(
    path: Path, *, min_pixels: int | None = None, max_pixels: int | None = None, with_token_types: bool = True
):
    """transformers' ``AutoProcessor`` where it loads, else ``LightQwen2VLProcessor`` (no torchvision)."""
    from transformers import AutoProcessor, AutoTokenizer

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
    left_padded(processor.tokenizer)
    return processor


def save_processor(processor, out_dir: str | os.PathLike) -> None:
    """Save a processor, or the parts of a ``LightQwen2VLProcessor``, as a checkpoint directory holds them."""
    out = Path(out_dir)
    if hasattr(processor, "save_pretrained"):
        processor.save_pretrained(out)
        return
    processor.tokenizer.save_pretrained(out)
    processor.image_processor.save_pretrained(out)
    (out / "chat_template.jinja").write_text(processor.chat_template, encoding="utf-8")
