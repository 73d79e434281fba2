"""`coe finetune`: LoRA / Q-LoRA on the graph's own prompts."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console

err = Console(stderr=True)

finetune_app = typer.Typer(no_args_is_help=True, help="Fine-tune a Qwen2-VL model (LoRA / Q-LoRA) on CoE prompts.")


@finetune_app.command("prepare")
def finetune_prepare(
    out: str = typer.Option(..., "--out", help="Output directory (one sub-folder per stage unless --multitask)."),
    stages: str = typer.Option("qg,rg,dg", "--stages", help="Comma-separated stages: qg, rg, dg."),
    multitask: bool = typer.Option(False, "--multitask", help="One mixed dataset over all stages."),
    split: str = typer.Option("train", "--split", help="train or val."),
    limit: Optional[int] = typer.Option(None, "--limit", help="A seeded sample of this many items."),
    k: int = typer.Option(4, "--k", help="Exemplars shown per prompt (the graph's default)."),
    tokenizer: Optional[str] = typer.Option(
        None, "--tokenizer", help="Model directory or Qwen2 .gguf for token counts."
    ),
    data: Optional[str] = typer.Option(None, "--data", help="ScienceQA folder (or $COE_SCIENCEQA_DIR)."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Training records from the exemplar bank, with the graph's own prompts and retrieval."""
    from coe.finetune import command

    summary = command.prepare(
        stages=stages,
        multitask=multitask,
        split=split,
        out=out,
        limit=limit,
        data=data,
        k=k,
        seed=seed,
        tokenizer=tokenizer,
        console=err,
    )
    if as_json:
        print(command.dump(summary))
    else:
        command.print_prepare(summary, Console())


@finetune_app.command("train")
def finetune_train(
    base: str = typer.Option(..., "--base", help="Base model: hub preset, local checkpoint directory or repo id."),
    data: str = typer.Option(..., "--data", help="A dataset directory from `coe finetune prepare`."),
    out: str = typer.Option(..., "--out", help="Output directory (checkpoints, train_log.jsonl, adapter/)."),
    qlora: bool = typer.Option(False, "--qlora/--lora", help="Q-LoRA (4-bit base, CUDA) or LoRA (default)."),
    epochs: float = typer.Option(2.0, "--epochs"),
    max_steps: int = typer.Option(-1, "--max-steps", help="Stop after this many optimizer steps (overrides epochs)."),
    lr: float = typer.Option(1e-5, "--lr"),
    lora_r: int = typer.Option(64, "--lora-r"),
    lora_alpha: int = typer.Option(16, "--lora-alpha"),
    lora_dropout: float = typer.Option(0.05, "--lora-dropout"),
    warmup_ratio: float = typer.Option(0.01, "--warmup-ratio"),
    weight_decay: float = typer.Option(0.1, "--weight-decay"),
    batch_size: int = typer.Option(1, "--batch-size"),
    grad_accum: int = typer.Option(8, "--grad-accum"),
    max_length: int = typer.Option(2048, "--max-length", help="Longer records (image tokens included) are dropped."),
    save_steps: int = typer.Option(200, "--save-steps"),
    logging_steps: int = typer.Option(10, "--logging-steps"),
    gradient_checkpointing: bool = typer.Option(True, "--gradient-checkpointing/--no-gradient-checkpointing"),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bf16 on a GPU that has it, else fp32), bf16, fp16, fp32."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Cap on image pixels per image."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the newest checkpoint in --out."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """LoRA / Q-LoRA on the language model (vision tower frozen), loss on the assistant's tokens only."""
    from coe.finetune import command

    options = dict(
        base=base,
        data=data,
        out=out,
        method="qlora" if qlora else "lora",
        epochs=epochs,
        max_steps=max_steps,
        lr=lr,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        warmup_ratio=warmup_ratio,
        weight_decay=weight_decay,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_length=max_length,
        save_steps=save_steps,
        logging_steps=logging_steps,
        gradient_checkpointing=gradient_checkpointing,
        dtype=dtype,
        max_pixels=max_pixels,
        resume=resume,
        seed=seed,
    )
    summary = command.train(options, err)
    if as_json:
        print(command.dump(summary))
    else:
        loss = f"mean logged loss {summary['train_loss']:.4f}, " if summary["train_loss"] is not None else ""
        Console().print(
            f"adapter saved to {summary['adapter']} after {summary['global_step']} steps "
            f"({loss}{summary['seconds']:.0f}s); evaluate it with "
            f"`coe eval --model transformers:{summary['adapter']}`",
            highlight=False,
        )


@finetune_app.command("merge")
def finetune_merge(
    adapter: str = typer.Option(..., "--adapter", help="An adapter directory from `coe finetune train`."),
    out: str = typer.Option(..., "--out", help="New directory for the merged checkpoint."),
) -> None:
    """Fold an adapter into its base model and save a standalone checkpoint."""
    from coe.finetune import command

    print(command.merge(adapter, out, err))
