"""`coe generate` (one verified item) and `coe ui` (the review console)."""

from __future__ import annotations

import json
import os
import sys
from typing import Optional

import typer
from rich.console import Console

err = Console(stderr=True)


def generate(
    image: Optional[str] = typer.Option(None, "--image", help="Diagram or photo (PNG/JPEG)."),
    answer: str = typer.Option(..., "--answer", help="The correct answer the item tests."),
    context: str = typer.Option("", "--context", help="Text that accompanies the image."),
    context_file: Optional[str] = typer.Option(None, "--context-file", help="Read the context from a UTF-8 file."),
    material: Optional[str] = typer.Option(
        None,
        "--material",
        help="Take the context and picture from this "
        "ingested material (`coe ingest`): the passage that teaches the answer.",
    ),
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
    choose: str = typer.Option(
        "auto",
        "--choose",
        help="Who picks the question and distractors: rankers, model, "
        "or auto (rankers when the model cannot see the picture).",
    ),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip verification (the item is 'unverified')."),
    notes: bool = typer.Option(
        False, "--notes", help="Also write why a student would pick each wrong option (one more model call)."
    ),
    strict: bool = typer.Option(False, "--strict", help="Exit 3 when the item is flagged (or unverified)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    bank: list[str] = typer.Option(
        [],
        "--bank",
        metavar="NAME",
        help="Exemplar bank(s) to search (repeatable or a,b; default: ScienceQA's). See `coe bank list`.",
    ),
    assignments: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Any graph setting (repeatable; README: Configuration)."
    ),
) -> None:
    """Write one multiple-choice item for an image + context + answer, verified by an answering agent."""
    from coe.errors import InputError
    from coe.generate import check_inputs, generate_item
    from coe.graphs.services import default_services
    from coe.imageio import read_text_file

    if context_file:
        context = read_text_file(context_file)
    source = None
    if material:
        if image or context.strip():
            raise InputError("--material takes the context and picture from the material; drop --image and --context")
        if not answer.strip():
            raise InputError("the answer is empty")
        from coe.ingest.retrieve import material_input

        found = material_input(material, answer)
        context, image, source = found["context"], found["image_path"], found["source"]
    from coe.graphs.settings import check_settings, choose_settings, parse_assignments

    named = {
        "mode": mode,
        "use_exemplars": not no_exemplars,
        "use_rationale": not no_rationale,
        "difficulty": difficulty,
        "seed": seed,
        "verify": not no_verify,
        "write_notes": notes,
        **choose_settings(choose),
    }
    settings = check_settings({**named, **parse_assignments(assignments)}).model_dump(exclude_unset=True)
    n_distractors = settings.pop("n_distractors", n_distractors)
    check_inputs(image=image, context=context, answer=answer, question=question, n_distractors=n_distractors)
    from coe.history import traces_dir
    from coe.paths import writable_dir

    writable_dir(traces_dir(), "run history", "COE_HOME")  # before minutes of work that could not be kept
    from coe.question_banks import parse_banks

    banks = parse_banks(bank)
    with err.status("loading models…"):
        services = default_services(model, banks)

    def stream(node: str, update: dict) -> None:
        if not as_json:
            for step in update.get("trace", []):
                err.print(f"[dim]· {node} ({step.get('seconds', 0):.1f} s)[/dim]")

    item = generate_item(
        image=image,
        answer=answer,
        context=context,
        question=question,
        n_distractors=n_distractors,
        subject=subject,
        grade=grade,
        services=services,
        stream=stream,
        **settings,
    )
    item.source = source
    _record(
        item,
        inputs={
            "image": image,
            "context": context,
            "answer": answer,
            "question": question,
            "n_distractors": n_distractors,
            "subject": subject,
            "grade": grade,
            "material": material,
        },
        settings={"model": model, **settings},
    )
    if as_json:
        print(json.dumps(item.model_dump(mode="json"), ensure_ascii=False))
    else:
        from coe.render import show_item

        show_item(item, Console())
        if item.source:
            from coe.ingest.retrieve import describe_source

            Console().print(f"Source: {describe_source(item.source)}", highlight=False, markup=False)
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
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--server.headless",
        "true" if headless else "false",
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(sys.executable, cmd)  # Streamlit takes over this process, and its signals
    return subprocess.call(cmd)
