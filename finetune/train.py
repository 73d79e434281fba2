"""LoRA / Q-LoRA supervised fine-tuning of a Qwen2-VL model on ``coe finetune prepare`` records.

Defaults follow the CoE paper's released adapter (r=64, alpha=16, dropout 0.05, lr 1e-5, cosine schedule,
warmup 1 %, weight decay 0.1, 2 epochs). Adapters go on the language model's linear layers only; the
vision tower and everything else stay frozen. Training resumes from the newest checkpoint in ``out``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from coe.errors import ConfigError, InputError

# The language model's projections; the vision tower's layers are named qkv/proj/fc1/fc2 and never match.
LORA_TARGET = r"^(?!.*visual).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"


class TrainConfig(BaseModel):
    base: str
    data: str
    out: str
    method: str = "lora"  # lora | qlora
    epochs: float = 2.0
    max_steps: int = -1  # > 0 overrides epochs
    lr: float = 1e-5
    lora_r: int = 64
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    warmup_ratio: float = 0.01
    weight_decay: float = 0.1
    scheduler: str = "cosine"
    batch_size: int = 1
    grad_accum: int = 8
    max_length: int = 2048
    save_steps: int = 200
    save_total_limit: int = 2
    logging_steps: int = 10
    gradient_checkpointing: bool = True
    # Compile each language-model decoder layer (torch.compile): far fewer kernel launches per step, which
    # is what bounds batch-1 LoRA steps on a fast GPU; costs a compile per new sequence-length regime.
    compile: bool = False
    dtype: str = "auto"  # auto: bf16 on a GPU that supports it, else fp32
    device: str | None = None
    max_pixels: int | None = None
    seed: int = 0
    resume: bool = True


def _dtype(cfg: TrainConfig, device: str):
    import torch

    if cfg.dtype != "auto":
        from coe.plugins.llm.transformers_loading import torch_dtype

        return torch_dtype(cfg.dtype, device)
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def add_lora(model, cfg: TrainConfig, *, quantized: bool = False):
    """The peft model: LoRA on the language model, everything else frozen."""
    from peft import LoraConfig, get_peft_model

    if quantized:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=LORA_TARGET,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def compile_layers(model) -> int:
    """Compile every language-model decoder layer in place (one graph serves all layers: same code, the
    weights are inputs). Returns how many were compiled."""
    n = 0
    for name, module in model.named_modules():
        if type(module).__name__.endswith("DecoderLayer") and "visual" not in name:
            module.compile(dynamic=None)
            n += 1
    return n


def load_for_training(cfg: TrainConfig):
    """(model with LoRA, processor, base checkpoint path)."""
    import torch

    from coe.modelstore.hub import resolve_vlm
    from coe.plugins.llm.transformers_loading import load_model, takes_token_types
    from coe.plugins.llm.transformers_processing import load_processor

    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    quantized = cfg.method == "qlora"
    if cfg.method not in ("lora", "qlora"):
        raise InputError(f"unknown method {cfg.method!r}; use lora or qlora")
    if quantized and not device.startswith("cuda"):
        raise ConfigError("Q-LoRA needs a CUDA GPU (bitsandbytes 4-bit); use --lora on the CPU")
    name, path = resolve_vlm(cfg.base)
    dtype = _dtype(cfg, device)
    model = load_model(path, dtype=dtype, device=device, load_in_4bit=quantized, label=name)
    # The KV cache is useless in training and conflicts with gradient checkpointing.
    for conf in (model.config, getattr(model.config, "text_config", None)):
        if conf is not None:
            conf.use_cache = False
    processor = load_processor(path, max_pixels=cfg.max_pixels, with_token_types=takes_token_types(model))
    processor.tokenizer.padding_side = "right"
    model = add_lora(model, cfg, quantized=quantized)
    if cfg.compile:
        compile_layers(model)
    return model, processor, path


class _Progress:
    """Trainer callback: one line per logging step, and the same record appended to train_log.jsonl."""

    def __init__(self, out: Path, echo: Callable[[str], None]):
        from transformers import TrainerCallback

        outer = self

        class Callback(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                outer.log(state, logs or {})

        self.callback = Callback()
        self.path = out / "train_log.jsonl"
        self.echo = echo
        self.t0 = time.perf_counter()
        self.losses: list[float] = []

    def log(self, state, logs: dict[str, Any]) -> None:
        rec = {
            "step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": round(state.epoch or 0, 3),
            **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in logs.items()},
        }
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        if "loss" in logs:
            self.losses.append(float(logs["loss"]))
            self.echo(
                f"step {state.global_step}/{state.max_steps}  loss {logs['loss']:.4f}  "
                f"lr {logs.get('learning_rate', 0):.2e}  {time.perf_counter() - self.t0:.0f}s"
            )


def training_args(cfg: TrainConfig, device: str, dtype):
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=cfg.out,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        bf16=dtype == torch.bfloat16,
        fp16=False,
        gradient_checkpointing=cfg.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        remove_unused_columns=False,
        report_to=[],
        dataloader_num_workers=0,
        seed=cfg.seed,
        use_cpu=not device.startswith("cuda"),
        disable_tqdm=True,
    )


def last_checkpoint(out: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(out)) if out.is_dir() else None


def make_trainer(model, processor, dataset, cfg: TrainConfig, echo: Callable[[str], None] = print):
    from transformers import Trainer

    from .encode import collate

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = str(next(model.parameters()).device)
    progress = _Progress(out, echo)
    pad = processor.tokenizer.pad_token_id
    args = training_args(cfg, device, _dtype(cfg, device))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=lambda b: collate(b, pad),
        callbacks=[progress.callback],
    )
    trainer.coe_progress = progress
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):  # our callback prints one line per log instead
        trainer.remove_callback(cb)
    return trainer


def train(cfg: TrainConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Train, save the adapter to ``out/adapter`` and return a summary (also ``out/adapter/coe_finetune.json``)."""
    from .encode import SFTDataset
    from .records import read_dataset

    records = read_dataset(cfg.data)
    model, processor, base_path = load_for_training(cfg)
    dataset = SFTDataset(records, processor, max_length=cfg.max_length)
    if len(dataset) == 0:
        raise InputError(f"all {len(records)} records are longer than --max-length {cfg.max_length}")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    steps = (
        cfg.max_steps
        if cfg.max_steps > 0
        else math.ceil(math.ceil(len(dataset) / cfg.batch_size) / cfg.grad_accum * cfg.epochs)
    )
    echo(
        f"training {cfg.method} on {base_path.name}: {len(dataset)} records ({dataset.dropped} over "
        f"{cfg.max_length} tokens dropped), {trainable / 1e6:.2f}M of {total / 1e6:.1f}M parameters trainable, "
        f"{steps} optimizer steps of {cfg.batch_size}×{cfg.grad_accum}"
    )
    trainer = make_trainer(model, processor, dataset, cfg, echo)
    out = Path(cfg.out)
    resume = last_checkpoint(out) if cfg.resume else None
    if resume:
        echo(f"resuming from {resume}")
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    losses = trainer.coe_progress.losses
    adapter_dir = out / "adapter"
    tmp = out / "adapter.partial"
    model.save_pretrained(tmp)
    summary = {
        "base": str(base_path),
        "data": str(cfg.data),
        "records": len(dataset),
        "dropped_over_max_length": dataset.dropped,
        "global_step": trainer.state.global_step,
        # Logged losses of this run: the Trainer's mean also divides by steps done before a resume.
        "train_loss": round(sum(losses) / len(losses), 6) if losses else None,
        "last_loss": losses[-1] if losses else None,
        "seconds": round(time.perf_counter() - t0, 1),
        "resumed_from": resume,
        "trainable_parameters": trainable,
        "config": cfg.model_dump(),
    }
    (tmp / "coe_finetune.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if adapter_dir.exists():
        import shutil

        shutil.rmtree(adapter_dir)
    tmp.replace(adapter_dir)
    summary["adapter"] = str(adapter_dir)
    return summary
