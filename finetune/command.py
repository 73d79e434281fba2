"""``coe finetune prepare|train|merge`` behind the CLI: argument checks, progress and summaries."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from rich.console import Console

from coe.errors import ConfigError, InputError

from .records import STAGES, build_records, summarize, write_dataset


def _tokenizer_processor(spec: str | None, console: Console):
    """A Qwen2-VL processor for token counts: a model directory's own, else one around the Qwen2 tokenizer
    of the pulled 0.5B GGUF. None (and a note) without transformers."""
    try:
        from coe.plugins.llm.transformers_processing import load_processor
        from coe.plugins.llm.vl_random import build_processor, load_qwen2_tokenizer
    except ImportError:
        console.print("token statistics skipped: they need transformers (pip install 'coe[vlm]')")
        return None
    if spec and Path(spec).is_dir() and (Path(spec) / "config.json").is_file():
        return load_processor(Path(spec))
    if spec:
        return build_processor(load_qwen2_tokenizer(spec))
    from coe.modelstore import is_pulled, resolve_llm

    preset = "qwen2.5-coder-0.5b-instruct-q4"
    if not is_pulled(preset):
        console.print(
            f"token statistics skipped: pass --tokenizer or `coe models pull {preset}` (its Qwen2 "
            "tokenizer is the one Qwen2-VL uses)"
        )
        return None
    return build_processor(load_qwen2_tokenizer(resolve_llm(preset)[1]))


def prepare(
    *,
    stages: str,
    multitask: bool,
    split: str,
    out: str,
    limit: int | None,
    data: str | None,
    k: int,
    seed: int,
    tokenizer: str | None,
    retriever=None,
    dataset=None,
    console: Console | None = None,
) -> dict[str, Any]:
    from coe.progress import make_progress

    console = console or Console(stderr=True)
    chosen = [s.strip() for s in stages.split(",") if s.strip()]
    if not chosen or any(s not in STAGES for s in chosen):
        raise InputError(f"--stages takes a comma list of {', '.join(STAGES)}; got {stages!r}")
    if split not in ("train", "val"):
        raise InputError("--split must be train or val (test items are never trained on)")
    if limit is not None and limit < 1:
        raise InputError("--limit must be at least 1")
    out_dir = Path(out).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file")
    if dataset is None:
        from coe.dataset_loaders import ScienceQA

        dataset = ScienceQA(data)
    if retriever is None:
        from coe.graphs.services import retrieval_services

        retriever = retrieval_services().retriever
    processor = _tokenizer_processor(tokenizer, console)

    with make_progress(console=console) as bar:
        task = bar.add_task("retrieving exemplars and rendering prompts", total=None)
        records = build_records(
            dataset,
            retriever,
            split=split,
            stages=chosen,
            limit=limit,
            k=k,
            seed=seed,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    groups = {"multitask": records} if multitask else {s: [r for r in records if r.stage == s] for s in chosen}
    if multitask:
        random.Random(seed).shuffle(records)  # stages interleaved, so every batch mixes tasks
    summary: dict[str, Any] = {"split": split, "stages": chosen, "multitask": multitask, "datasets": {}}
    for name, recs in groups.items():
        if not recs:
            console.print(f"{name}: no records (no {split} item has gold output for it)")
            continue
        lengths = None
        if processor is not None:
            with console.status(f"{name}: counting tokens…"):
                from .encode import token_lengths

                lengths = token_lengths(processor, recs)
        stats = summarize(recs, lengths)
        target = out_dir if multitask else out_dir / name
        meta = {
            "split": split,
            "stages": chosen if multitask else [name],
            "multitask": multitask,
            "exemplars_per_prompt": k,
            "exemplar_splits": ["train"],
            "limit": limit,
            "seed": seed,
            "stats": stats,
        }
        write_dataset(recs, target, meta)
        summary["datasets"][name] = {"path": str(target), **stats}
    return summary


def print_prepare(summary: dict[str, Any], console: Console) -> None:
    for name, d in summary["datasets"].items():
        line = (
            f"[bold]{name}[/bold] → {d['path']}/train.jsonl: {d['records']} records from {d['items']} "
            f"{summary['split']} items ({d['with_images']} with images; per stage {d['per_stage']})"
        )
        console.print(line)
        for key in ("prompt_tokens", "target_tokens", "total_tokens"):
            if key in d:
                s = d[key]
                console.print(
                    f"  {key.replace('_', ' '):14s} mean {s['mean']:7.1f}  p50 {s['p50']:5d}  "
                    f"p95 {s['p95']:5d}  max {s['max']:5d}"
                )


def train(options: dict[str, Any], console: Console) -> dict[str, Any]:
    try:
        from .train import TrainConfig
        from .train import train as run_training
    except ImportError as exc:
        raise ConfigError(f"fine-tuning needs `pip install 'coe[vlm]'` ({exc})") from None
    cfg = TrainConfig(**options)
    if cfg.batch_size < 1 or cfg.grad_accum < 1 or cfg.max_length < 16:
        raise InputError("--batch-size and --grad-accum must be ≥ 1 and --max-length ≥ 16")
    if cfg.lr <= 0 or cfg.epochs <= 0:
        raise InputError("--lr and --epochs must be positive")
    summary = run_training(cfg, echo=lambda msg: console.print(msg, highlight=False))
    return summary


def merge(adapter: str, out: str, console: Console) -> Path:
    from coe.plugins.llm.transformers_loading import adapter_base
    from coe.plugins.llm.transformers_vl import TransformersVLLM

    if adapter_base(adapter) is None:
        raise InputError(f"{adapter} is not a LoRA adapter directory (adapter_config.json naming its base)")
    target = Path(out).expanduser()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"{target} exists and is not an empty directory; choose a new one")
    with console.status("loading the base model and the adapter…"):
        llm = TransformersVLLM(adapter, dtype="auto")
    with console.status("merging and saving…"):
        path = llm.save_merged(out)
    return path


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
