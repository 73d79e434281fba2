"""Records → model inputs: the prompt tokenized exactly as the plugin does at inference (chat template with
the generation prompt, images expanded by the processor), then the assistant's tokens and ``<|im_end|>``.
Only the assistant's tokens carry loss (labels -100 elsewhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coe.errors import InputError
from coe.plugins.llm.protocol import ImageRef

IGNORE = -100
END = "<|im_end|>"


def _text(content: list[dict[str, Any]]) -> str:
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def record_images(record) -> list:
    from coe.plugins.llm.transformers_processing import load_pil

    images = []
    for path in record.images:
        if not Path(path).is_file():
            raise InputError(f"record {record.id}: image not found: {path}")
        images.append(load_pil(ImageRef(path=Path(path))))  # size-bounded, RGB
    return images


def prompt_text(processor, record) -> str:
    """The chat-templated prompt (all but the assistant's reply), ending with the generation prompt."""

    def part(p: dict[str, Any]) -> dict[str, Any]:
        # Image parts lose their path: the processor gets the pixels separately, as at inference.
        return {"type": "text", "text": p["text"]} if p["type"] == "text" else {"type": p["type"]}

    conversation = [{"role": m["role"], "content": [part(p) for p in m["content"]]} for m in record.messages[:-1]]
    return processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)


def encode_record(processor, record) -> dict[str, Any]:
    """Tensors for one record (batch dimension 1); ``SFTDataset`` drops or cuts the long ones."""
    import torch

    last = record.messages[-1]
    if last["role"] != "assistant":
        raise InputError(f"record {record.id}: the last message must be the assistant's")
    images = record_images(record)
    prompt = processor(text=[prompt_text(processor, record)], images=images or None, padding=False, return_tensors="pt")
    target = processor.tokenizer(_text(last["content"]) + END, add_special_tokens=False, return_tensors="pt")[
        "input_ids"
    ]
    n_prompt = prompt["input_ids"].shape[1]
    out: dict[str, Any] = {
        "input_ids": torch.cat([prompt["input_ids"], target], dim=1),
        "labels": torch.cat([torch.full((1, n_prompt), IGNORE, dtype=torch.long), target], dim=1),
    }
    out["attention_mask"] = torch.ones_like(out["input_ids"])
    if "mm_token_type_ids" in prompt:
        out["mm_token_type_ids"] = torch.cat(
            [prompt["mm_token_type_ids"], torch.zeros_like(target, dtype=prompt["mm_token_type_ids"].dtype)], dim=1
        )
    for key in ("pixel_values", "image_grid_thw"):
        if key in prompt:
            out[key] = prompt[key]
    return out


def token_lengths(processor, records) -> list[tuple[int, int]]:
    """(prompt tokens with image tokens expanded, target tokens) per record."""
    lengths = []
    for r in records:
        enc = encode_record(processor, r)
        n_target = int((enc["labels"] != IGNORE).sum())
        lengths.append((enc["input_ids"].shape[1] - n_target, n_target))
    return lengths


class SFTDataset:
    """Encodes lazily; records over ``max_length`` are dropped up front (their count is kept)."""

    def __init__(self, records, processor, *, max_length: int = 2048):
        self.processor = processor
        self.max_length = max_length
        self.records = []
        self.dropped = 0
        for r in records:
            n = len(
                processor.tokenizer(
                    prompt_text(processor, r) + _text(r.messages[-1]["content"]), add_special_tokens=False
                )["input_ids"]
            )
            # Image placeholders expand later; text alone over the limit can never fit.
            if n > max_length:
                self.dropped += 1
            else:
                self.records.append(r)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        enc = encode_record(self.processor, self.records[i])
        if enc["input_ids"].shape[1] > self.max_length:  # image tokens pushed it over: keep the start
            enc = _truncate(enc, self.max_length)
        return enc


def _truncate(enc: dict[str, Any], n: int) -> dict[str, Any]:
    # Cutting through image tokens would break the image/token correspondence, so keep whole prompts
    # and cut the target's tail (its loss is what is lost, never the inputs' consistency).
    n_prompt = int((enc["labels"][0] == IGNORE).sum())
    if n_prompt >= n:
        raise InputError(f"a prompt of {n_prompt} tokens (images included) exceeds max_length {n}")
    return {
        k: (v[:, :n] if k in ("input_ids", "labels", "attention_mask", "mm_token_type_ids") else v)
        for k, v in enc.items()
    }


def collate(batch: list[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Right-padded batch; padding carries no loss and no attention."""
    import torch

    width = max(b["input_ids"].shape[1] for b in batch)

    def pad(key: str, value: int):
        return torch.cat(
            [torch.nn.functional.pad(b[key], (0, width - b[key].shape[1]), value=value) for b in batch], dim=0
        )

    out = {
        "input_ids": pad("input_ids", pad_token_id),
        "labels": pad("labels", IGNORE),
        "attention_mask": pad("attention_mask", 0),
    }
    if all("mm_token_type_ids" in b for b in batch):
        out["mm_token_type_ids"] = pad("mm_token_type_ids", 0)
    with_images = [b for b in batch if "pixel_values" in b]
    if with_images:
        out["pixel_values"] = torch.cat([b["pixel_values"] for b in with_images], dim=0)
        out["image_grid_thw"] = torch.cat([b["image_grid_thw"] for b in with_images], dim=0)
    return out
