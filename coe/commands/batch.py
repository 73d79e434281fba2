"""`coe batch run|status|review|export`: many items from a manifest, resumable, reviewed, exported."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

batch_app = typer.Typer(no_args_is_help=True, help="Make items by the hundred: run a manifest, review, export.")
err = Console(stderr=True)


@batch_app.command("run")
def run(
    manifest: str = typer.Argument(
        ...,
        help="CSV/JSONL manifest (image, context, answer, question, "
        "n_distractors, id, tags) or a folder of images with one.",
    ),
    out: str = typer.Option(..., "--out", help="Run folder (its ledger makes a rerun continue)."),
    model: Optional[str] = typer.Option(None, "--model", help="As for coe generate (NAME:SPEC, preset, .gguf)."),
    mode: str = typer.Option("json", "--mode", help="json or coe."),
    difficulty: str = typer.Option("medium", "--difficulty", help="easy, medium or hard."),
    seed: int = typer.Option(0, "--seed", help="Seed of every item in the run."),
    choose: str = typer.Option("auto", "--choose", help="rankers, model, or auto: as for coe generate."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip verification (items are 'unverified')."),
    notes: bool = typer.Option(False, "--notes", help="Also write why a student would pick each wrong option."),
    max_concurrency: Optional[int] = typer.Option(
        None, "--max-concurrency", help="Items in flight at once (per worker with Ray)."
    ),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run the rows that failed before again."),
    engine: str = typer.Option("local", "--engine", help="local, or ray to spread rows over a Ray cluster."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: start one)."),
    workers: int = typer.Option(2, "--workers", help="Ray workers (one set of models each)."),
    bank: list[str] = typer.Option(
        [], "--bank", metavar="NAME", help="Exemplar bank(s) to search (repeatable or a,b; default: ScienceQA's)."
    ),
    allow_outside: bool = typer.Option(
        False, "--allow-outside-files", help="Rows may name pictures outside the manifest's folder."
    ),
    assignments: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Any graph setting, for every row (repeatable; README: Configuration)."
    ),
) -> None:
    """Write one item per manifest row into a run folder; run it again after a crash to continue."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from coe.batch.run import run_batch
    from coe.errors import CoeError
    from coe.progress import make_progress

    from coe.graphs.settings import choose_settings, parse_assignments

    # auto adds nothing, so a run begun before --choose existed continues with the same settings
    settings = {
        "mode": mode,
        "difficulty": difficulty,
        "seed": seed,
        "verify": not no_verify,
        "write_notes": notes,
        **choose_settings(choose),
        **parse_assignments(assignments),
    }
    from coe.question_banks import parse_banks

    progress = make_progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[tally]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
    )
    tally = {"verified": 0, "flagged": 0, "failed": 0}
    task: list[int] = []

    def on_start(todo: int, total: int) -> None:
        if todo < total:
            err.print(f"{total - todo} of {total} rows already in {out}; {todo} to write")
        task.append(progress.add_task("items", total=todo, tally=""))

    def on_item(entry: dict) -> None:
        key = "failed" if entry["state"] == "failed" else entry.get("status")
        if key in tally:
            tally[key] += 1
        progress.update(task[0], advance=1, tally=", ".join(f"{v} {k}" for k, v in tally.items()))

    with progress:
        summary = run_batch(
            manifest,
            out,
            model=model,
            settings=settings,
            max_concurrency=max_concurrency,
            retry_failed=retry_failed,
            engine=engine,
            address=address,
            workers=workers,
            on_start=on_start,
            on_item=on_item,
            banks=parse_banks(bank),
            allow_outside=allow_outside,
        )
    per_item = f", {summary.seconds_per_item:.1f} s/item" if summary.seconds_per_item else ""
    err.print(
        f"done {summary.done} of {summary.total} ({summary.verified} verified, {summary.flagged} flagged), "
        f"failed {summary.failed}, bad rows {summary.invalid}; wrote {summary.written_now} now in "
        f"{summary.seconds:.0f} s{per_item}"
    )
    for f in summary.failures[:10]:
        err.print(f"  line {f['line']} ({f['id']}): {f['error']}")
    if len(summary.failures) > 10:
        err.print(f"  … and {len(summary.failures) - 10} more: coe batch status {out}")
    print(summary.run_dir)
    if summary.failures:
        raise CoeError(
            f"{len(summary.failures)} rows have no item (see above); fix them and run again"
            + (", with --retry-failed for the failed ones" if summary.failed else "")
        )


@batch_app.command("status")
def status(
    run_dir: str = typer.Argument(..., help="The run folder."),
    as_json: bool = typer.Option(False, "--json", help="Print counts and failures as JSON."),
) -> None:
    """Counts of a run (written, verified, flagged, failed, reviewed) and every failure."""
    from coe.batch.ledger import Ledger

    with Ledger(run_dir, create=False) as ledger:
        counts = ledger.counts()
        failures = ledger.failures()
        meta = ledger.meta()
    if as_json:
        print(json.dumps({"counts": counts, "failures": failures, "settings": meta.get("settings")}))
        return
    table = Table("", "items", title=f"{run_dir}", show_header=False)
    for label, key in (
        ("rows", "total"),
        ("written", "done"),
        ("verified", "verified"),
        ("unconfirmed", "unconfirmed"),
        ("flagged", "flagged"),
        ("failed", "failed"),
        ("bad rows", "invalid"),
        ("pending", "pending"),
        ("accepted", "accepted"),
        ("rejected", "rejected"),
    ):
        table.add_row(label, str(counts[key]))
    Console().print(table)
    for f in failures:
        Console().print(f"line {f['line']} ({f['id']}, {f['state']}): {f['error']}", highlight=False)


@batch_app.command("review")
def review(
    run_dir: str = typer.Argument(..., help="The run folder."),
    accept: list[str] = typer.Option([], "--accept", help="Accept this item (repeatable)."),
    reject: list[str] = typer.Option([], "--reject", help="Reject this item (repeatable)."),
    accept_verified: bool = typer.Option(
        False, "--accept-verified", help="Accept every verified item not yet decided."
    ),
) -> None:
    """Accept or reject items from the command line (the console's Batch page does the same)."""
    from coe.batch.ledger import Ledger

    with Ledger(run_dir, create=False) as ledger:
        for row_id in accept:
            ledger.decide(row_id, "accepted")
        for row_id in reject:
            ledger.decide(row_id, "rejected")
        n = ledger.accept_verified() if accept_verified else 0
        counts = ledger.counts()
    err.print(
        f"accepted {counts['accepted']}, rejected {counts['rejected']}"
        + (f" ({n} verified items accepted now)" if accept_verified else "")
    )


@batch_app.command("export")
def export(
    run_dir: str = typer.Argument(..., help="The run folder."),
    fmt: str = typer.Option(..., "--format", help="moodle-xml, gift, qti21, aiken, csv or jsonl."),
    out: str = typer.Option(..., "--out", help="File to write."),
    only: str = typer.Option("all", "--only", help="all, accepted, verified or not-rejected."),
) -> None:
    """Write a run's items for an LMS, with the reviewer's edits and the images embedded."""
    from coe.batch.export import export_run

    path, n = export_run(run_dir, fmt, out, only=only)
    err.print(f"wrote {n} items as {fmt}")
    print(path)


@batch_app.command("scienceqa")
def scienceqa(
    out: str = typer.Option(..., "--out", help="Manifest file to write (.csv)."),
    data: Optional[str] = typer.Option(None, "--data", help="ScienceQA folder (default: COE_SCIENCEQA_DIR)."),
    split: str = typer.Option("test", "--split", help="train, val or test."),
    n: int = typer.Option(20, "--n", help="How many items with pictures."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample."),
) -> None:
    """Write a manifest of ScienceQA items with pictures (a seeded sample), to run the benchmark's inputs."""
    from coe.batch.scienceqa_manifest import scienceqa_manifest

    path, count = scienceqa_manifest(data, out, split=split, n=n, seed=seed)
    err.print(f"wrote {count} rows of ScienceQA {split}")
    print(path)
