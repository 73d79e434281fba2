"""`coe bank import|list|remove`: question banks of one's own as exemplar banks."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

bank_app = typer.Typer(no_args_is_help=True, help="Import question banks as exemplars; list and remove them.")
err = Console(stderr=True)
SHOWN_PROBLEMS = 20


@bank_app.command("import")
def import_(
    file: str = typer.Argument(..., help="Moodle XML, GIFT, Aiken, QTI 2.1 (zip or item .xml), CSV or JSONL."),
    bank: str = typer.Option(..., "--bank", help="Bank name (created, or grown by this file)."),
    fmt: str | None = typer.Option(
        None, "--format", help="moodle-xml, gift, qti21, aiken, csv or jsonl (default: from the file)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    max_questions: int = typer.Option(
        10_000, "--max-questions", min=1, help="Refuse a file with more questions than this."
    ),
) -> None:
    """Read a question bank; its multiple-choice questions become exemplars that guide generation."""

    from coe.question_banks import import_bank
    from coe.progress import field_progress

    with field_progress(err) as progress:
        report = import_bank(file, bank, fmt=fmt, progress=progress, max_questions=max_questions)
    if as_json:
        print(
            json.dumps(
                {
                    "bank": report.bank,
                    "file": report.file,
                    "format": report.format,
                    "read": report.read,
                    "added": report.added,
                    "duplicates": report.duplicates,
                    "exemplars": report.exemplars,
                    "problems": [{"position": p.position, "kind": p.kind, "reason": p.reason} for p in report.problems],
                },
                ensure_ascii=False,
            )
        )
        return
    for problem in report.problems[:SHOWN_PROBLEMS]:
        err.print(f"{problem.kind}: {problem.line()}", highlight=False, markup=False)
    if len(report.problems) > SHOWN_PROBLEMS:
        err.print(
            f"... and {len(report.problems) - SHOWN_PROBLEMS} more (--json lists every one)",
            highlight=False,
            markup=False,
        )
    err.print(
        f"bank {report.bank}: {report.added} added from {report.format} "
        f"({len(report.duplicates)} duplicates, {len(report.problems)} skipped or unreadable); "
        f"{report.exemplars} exemplars in all",
        highlight=False,
        markup=False,
    )
    err.print(
        f"the learned rankers do not know these items yet: `coe rank train --bank {report.bank}` retrains "
        "them on this bank",
        highlight=False,
        markup=False,
    )


@bank_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print the banks as JSON.")) -> None:
    """The exemplar banks: name, size, source files and when they were imported."""
    from coe.question_banks import list_banks

    banks = list_banks()
    if as_json:
        print(json.dumps([b.model_dump() for b in banks], ensure_ascii=False))
        return
    table = Table("bank", "exemplars", "sources", "updated", "embedder")
    for b in banks:
        table.add_row(
            b.name,
            str(b.exemplars),
            ", ".join(dict.fromkeys(s["file"] for s in b.sources)),
            b.updated or "",
            b.embedder,
        )
    Console().print(table)


@bank_app.command("remove")
def remove(name: str = typer.Argument(..., help="The imported bank to remove.")) -> None:
    """Remove an imported bank: its index and its folder (pictures included)."""
    from coe.question_banks import remove_bank

    info = remove_bank(name)
    err.print(f"removed bank {info.name} ({info.exemplars} exemplars)", highlight=False, markup=False)
