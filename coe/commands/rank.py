"""`coe rank train`: (re)build the learned rankers of a set of exemplar banks."""

from __future__ import annotations

import json
from contextlib import contextmanager

import typer
from rich.console import Console

err = Console(stderr=True)
rank_app = typer.Typer(no_args_is_help=True, help="The learned rankers (distractors) over the exemplar banks.")


@contextmanager
def ranker_progress(console: Console):
    """A bar per training stage (``progress(stage, done, total)``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from coe.progress import make_progress

    with make_progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield progress


def summary(result: dict) -> str:
    if result["status"] != "built":
        return f"distractor ranker {result['status']} in {result['directory']}"
    val = result["val"]
    return (
        f"distractor ranker built in {result['directory']} ({result['seconds']} s): "
        f"{result['train_items']} train / {result['val_items']} val items"
        + (f", {result['reviewed_items']} reviewed items" if result.get("reviewed_items") else "")
        + f"; val NDCG@3 {val['ndcg@3']:.3f}, recall@n {val['recall@n']:.3f} "
        f"(heuristic {val['heuristic']['recall@n']:.3f}), pool coverage {val['coverage']['union']:.3f}"
    )


@rank_app.command("train")
def train(
    bank: list[str] = typer.Option(
        [],
        "--bank",
        metavar="NAME",
        help="Exemplar bank(s) whose rankers to build (repeatable or a,b; default: ScienceQA's).",
    ),
    from_run: list[str] = typer.Option(
        [], "--from-run", metavar="RUN_DIR", help="Add a batch run's review decisions as training data (repeatable)."
    ),
    force: bool = typer.Option(False, "--force", help="Rebuild even when the rankers are up to date."),
    max_items: int = typer.Option(
        4000,
        "--max-items",
        min=10,
        help="Train items for the distractor ranker (a fixed sample; val: a quarter as "
        "many, the question ranker: half of each).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train the distractor ranker on the bank (and reviewers' decisions) and save it beside the index."""
    from coe.question_banks import parse_banks
    from coe.graphs.services import retrieval_services
    from coe.ranking.build import build_rankers

    retriever = retrieval_services(parse_banks(bank)).retriever
    with ranker_progress(err) as progress:
        result = build_rankers(
            retriever,
            from_runs=from_run,
            force=force or bool(from_run),
            progress=progress,
            max_train=max_items,
            max_val=max(max_items // 4, 1),
        )
    if as_json:
        print(json.dumps({k: v for k, v in result.items() if k != "train_ids"}))
        return
    err.print(summary(result), highlight=False, markup=False)
