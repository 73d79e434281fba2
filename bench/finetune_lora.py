#!/usr/bin/env python3
"""LoRA fine-tuning speed and memory: seconds per optimizer step and peak GPU memory by sequence length.

Random-weight Qwen2-VL at the 7B shape in bf16 (see qwen2vl_batch.py), coe's own training path
(``coe.finetune.train``: LoRA r=64/alpha 16 on the language model, vision tower frozen, gradient
checkpointing, the Hugging Face Trainer), batch 1 with gradient accumulation 8, one 448×448 image per
sample (256 image tokens). Each sample is a real ScienceQA training record encoded as ``coe finetune``
encodes it, its text extended with more of its own prompt tokens to exactly the sequence length; the
last 64 tokens carry the loss.

    python bench/finetune_lora.py --out ft.json              # GPU: lengths 384,1024,2048
    python bench/finetune_lora.py --quick --out quick.json   # tiny model on the CPU: every path, < 2 min
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qwen2vl_inputs import ASSETS, import_coe, load_tokenizer  # noqa: E402

# The seed's LoRA on its 9.6B Qwen-VL-Chat, A100-80G: peak GB and s/it at 384 / 1024 / 2048.
SEED = {384: (23.3, 2.2), 1024: (25.1, 3.5), 2048: (27.3, 5.9)}


def sample_record(data: str | None, image_size: int):
    """A real training record with one image: a ScienceQA test image resized (train images are not part
    of the data here), rendered by ``coe.finetune.records`` with the item's own train exemplars."""
    from PIL import Image

    from coe.dataset_loaders import ScienceQA
    from coe.finetune.records import records_for
    from coe.retrieval.exemplars import Exemplar

    ds = None
    for root in [data] if data else [None, str(ASSETS / "scienceqa")]:
        try:
            ds = ScienceQA(root)
            break
        except Exception:
            continue
    if ds is None:
        raise SystemExit("no ScienceQA data found; pass --data")
    item = next(p for p in ds.split("test") if p.image_path and Path(p.image_path).is_file() and p.distractors)
    img = Image.open(item.image_path).convert("RGB").resize((image_size, image_size), Image.BICUBIC)
    path = Path("/tmp/coe-ft-bench.png")
    img.save(path)
    item = item.model_copy(update={"image_path": path})
    train = [p for p in ds.split("train") if p.subject == item.subject][:10]
    return records_for(item, [Exemplar.from_problem(p) for p in train], ["dg"])[0]


class FixedLength:
    """One image and a short question, extended with the record's own prompt text to exactly ``length``
    tokens (image tokens included), ``n`` times. A whole CoE prompt with exemplars is longer than 384
    tokens, so the shortest length keeps only its start."""

    def __init__(self, processor, record, length: int, n: int):
        import torch

        from coe.finetune.encode import IGNORE, prompt_text, record_images

        conv = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Write a question."}]}]
        head = processor(
            text=[processor.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)],
            images=record_images(record),
            padding=False,
            return_tensors="pt",
        )
        filler = processor.tokenizer(
            prompt_text(processor, record).replace("<|image_pad|>", "") + record.messages[-1]["content"][0]["text"],
            add_special_tokens=False,
            return_tensors="pt",
        )["input_ids"][0]
        need = length - head["input_ids"].shape[1]
        if need < 64:
            raise SystemExit(f"length {length} leaves no room after {head['input_ids'].shape[1]} prompt tokens")
        extra = filler.repeat(need // len(filler) + 1)[:need]
        full = torch.cat([head["input_ids"][0], extra])[None]
        labels = torch.full_like(full, IGNORE)
        labels[0, -64:] = full[0, -64:]
        self.item = {
            "input_ids": full,
            "labels": labels,
            "attention_mask": torch.ones_like(full),
            "pixel_values": head["pixel_values"],
            "image_grid_thw": head["image_grid_thw"],
        }
        if "mm_token_type_ids" in head:
            mm = head["mm_token_type_ids"]
            self.item["mm_token_type_ids"] = torch.cat([mm, torch.zeros((1, need), dtype=mm.dtype)], dim=1)
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {k: v.clone() for k, v in self.item.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny model on the CPU (smoke test)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--lengths", default=None, help="sequence lengths (default 384,1024,2048; quick: 384,512)")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps timed per length (default 3)")
    ap.add_argument("--grad-accum", type=int, default=8)
    ap.add_argument("--lora-r", type=int, default=64)
    ap.add_argument("--data", default=None)
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--image-size", type=int, default=448)
    ap.add_argument("--compile", action="store_true", help="compile the decoder layers (coe finetune train --compile)")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    log = lambda msg: print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)  # noqa: E731
    import_coe()
    import torch
    import transformers

    from coe.finetune.encode import encode_record
    from coe.finetune.train import TrainConfig, add_lora, compile_layers, make_trainer
    from coe.plugins.llm.vl_random import build_processor, make_config, random_model

    cuda = torch.cuda.is_available() and not args.quick
    device = "cuda" if cuda else "cpu"
    shape = "tiny" if args.quick else "7b"
    lengths = [int(x) for x in (args.lengths or ("384,512" if args.quick else "384,1024,2048")).split(",")]
    steps = args.steps or (2 if args.quick else 3)
    dtype = torch.bfloat16 if cuda else torch.float32
    results = {
        "env": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "device": device,
            "gpu": torch.cuda.get_device_name() if cuda else platform.processor(),
        },
        "config": {
            "shape": shape,
            "dtype": str(dtype).removeprefix("torch."),
            "batch_size": 1,
            "grad_accum": args.grad_accum,
            "lora_r": args.lora_r,
            "lora_alpha": 16,
            "gradient_checkpointing": True,
            "timed_steps": steps,
            "image_size": args.image_size,
            "compiled_layers": args.compile,
        },
        "rows": [],
        "errors": [],
    }

    def save():
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2))

    tok, _ = load_tokenizer(args.tokenizer, log)
    processor = build_processor(tok, "qwen2_vl")
    record = sample_record(args.data, args.image_size)
    enc = encode_record(processor, record)
    log(
        f"sample {record.id}: the whole CoE prompt is {enc['input_ids'].shape[1]} tokens incl. "
        f"{int(enc['image_grid_thw'].prod()) // 4} image tokens"
    )
    config = make_config("qwen2_vl", shape, vocab_size=152064 if shape == "7b" else max(len(tok), 151936))
    config._attn_implementation = "sdpa"
    t0 = time.perf_counter()
    model = random_model(config, dtype=dtype, device=device)
    log(
        f"model {sum(p.numel() for p in model.parameters()) / 1e9:.2f}B params on {device} "
        f"({time.perf_counter() - t0:.1f}s)"
    )
    cfg = TrainConfig(
        base="random",
        data="-",
        out="/tmp/coe-ft-bench",
        lora_r=args.lora_r,
        lora_alpha=16,
        grad_accum=args.grad_accum,
        max_steps=steps + 1,
        logging_steps=1,
        save_steps=10**9,
        warmup_ratio=0.0,
        lr=1e-5,
        device=device,
        dtype="bf16" if cuda else "fp32",
    )
    model.config.use_cache = False
    model.config.text_config.use_cache = False
    model = add_lora(model, cfg)
    if args.compile:
        log(f"compiling {compile_layers(model)} decoder layers (on first use)")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    results["config"]["trainable_parameters"] = trainable
    log(f"LoRA: {trainable / 1e6:.1f}M trainable parameters")

    for length in lengths:
        try:
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            data = FixedLength(processor, record, length, (steps + 1) * args.grad_accum)
            trainer = make_trainer(model, processor, data, cfg, echo=lambda m: None)
            marks: list[float] = []
            from transformers import TrainerCallback

            class Clock(TrainerCallback):
                def on_step_end(self, a, state, control, **kw):
                    if cuda:
                        torch.cuda.synchronize()
                    marks.append(time.perf_counter())

            trainer.add_callback(Clock())
            t0 = time.perf_counter()
            trainer.train()
            per_step = [b - a for a, b in zip(marks, marks[1:])]  # the first step (warm-up) is left out
            sec = statistics.median(per_step)
            peak = round(torch.cuda.max_memory_allocated() / 1e9, 2) if cuda else None
            seed_gb, seed_s = SEED.get(length, (None, None))
            rec = {
                "seq_len": length,
                "s_per_it": round(sec, 3),
                "peak_mem_gb": peak,
                "tokens_per_s": round(length * args.grad_accum / sec, 1),
                "loss": trainer.coe_progress.losses[-1] if trainer.coe_progress.losses else None,
                "wall_s": round(time.perf_counter() - t0, 1),
                "seed_s_per_it": seed_s,
                "seed_peak_gb": seed_gb,
                "speedup_vs_seed": round(seed_s / sec, 2) if seed_s else None,
            }
            results["rows"].append(rec)
            log(
                f"seq {length}: {sec:.3f} s/it ({args.grad_accum} micro-batches), peak {peak} GB"
                + (f"; seed {seed_s} s/it, {seed_gb} GB → {seed_s / sec:.2f}× faster" if seed_s else "")
            )
        except Exception as exc:
            results["errors"].append(
                {
                    "seq_len": length,
                    "error": f"{type(exc).__name__}: {exc}"[:2000],
                    "traceback": traceback.format_exc()[-3000:],
                }
            )
            log(f"seq {length}: FAILED {type(exc).__name__}: {str(exc)[:300]}")
        save()
    results["total_seconds"] = round(time.perf_counter() - t_start, 1)
    save()
    print(f"\n{'seq':>6}{'s/it':>9}{'peak GB':>9}{'seed s/it':>11}{'seed GB':>9}{'speedup':>9}")
    for r in results["rows"]:
        print(
            f"{r['seq_len']:>6}{r['s_per_it']:>9}{str(r['peak_mem_gb']):>9}{str(r['seed_s_per_it']):>11}"
            f"{str(r['seed_peak_gb']):>9}{str(r['speedup_vs_seed']):>9}"
        )
    print("targets: peak GB ≤ seed's and speedup ≥ 2× at every length")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
