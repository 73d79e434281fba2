"""`coe ingest` (teaching material into a named material), `coe suggest` (answer targets as a batch
manifest) and `coe material list|show|remove`."""

from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from coe.text import one_line

err = Console(stderr=True)
material_app = typer.Typer(no_args_is_help=True, help="Ingested teaching material: list, show, remove.")


def ingest(
    paths: List[str] = typer.Argument(..., help="Files or folders: PDF, DOCX, PPTX, HTML, Markdown, text, images."),
    material: str = typer.Option(..., "--material", help="Name of the material to add them to."),
    reread: bool = typer.Option(False, "--reread", help="Read unchanged files again (unchanged pages stay)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
    allow_outside: bool = typer.Option(
        False,
        "--allow-outside-files",
        help="Read pictures a document names outside its folder, and files linked from outside a folder given.",
    ),
    max_pages: int = typer.Option(1000, "--max-pages", min=1, help="Refuse a PDF with more pages than this."),
) -> int:
    """Read teaching material into passages and figures, searchable by `generate --material`."""
    from dataclasses import asdict

    from coe.ingest.pipeline import ingest as run_ingest

    report = run_ingest(paths, material, console=err, reread=reread, allow_outside=allow_outside, max_pages=max_pages)
    for f in report.failed:  # plain prints: one line each, never wrapped to the terminal's width
        print(f"coe: error: {one_line(f.error)}", file=sys.stderr)
    for w in report.warnings:
        print(f"coe: warning: {one_line(w)}", file=sys.stderr)
    if as_json:
        print(
            json.dumps(
                {
                    "material": report.material,
                    "seconds": report.seconds,
                    "files": [asdict(f) for f in report.files],
                    "warnings": report.warnings,
                }
            )
        )
    else:
        counts = ", ".join(
            f"{report.count(s)} {s}" for s in ("new", "changed", "unchanged", "removed", "failed") if report.count(s)
        )
        passages = sum(f.passages for f in report.files)
        figures = sum(f.figures for f in report.files)
        print(
            f"{report.material}: {counts}; {passages} passages and {figures} figures written in {report.seconds:.1f} s"
        )
    return 1 if report.failed else 0


def suggest(
    material: str = typer.Option(..., "--material", help="An ingested material."),
    n: int = typer.Option(20, "--n", help="How many answer targets to propose."),
    out: Optional[str] = typer.Option(None, "--out", help="Write the batch manifest (CSV) here; else print it."),
) -> None:
    """Propose answer targets (figure subjects, recurring terms) with their passages, as a batch manifest."""
    from coe.errors import InputError
    from coe.ingest.suggest import manifest_csv, suggest_targets, write_manifest

    if not 1 <= n <= 1000:
        raise InputError("--n must be between 1 and 1000")
    targets = suggest_targets(material, n)
    if out is None:
        print(manifest_csv(material, targets), end="")
        return
    path = write_manifest(material, targets, out)
    err.print(
        f"{len(targets)} targets written to {path} (run them: coe batch run {path} --out RUN_DIR)", highlight=False
    )


@material_app.command("list")
def list_command() -> None:
    """The ingested materials, with their files, passages and figures."""
    from coe.ingest import store

    names = store.list_materials()
    if not names:
        print("no materials yet (coe ingest PATH... --material NAME)")
    for name in names:
        registry = store.read_registry(store.material_dir(name))
        figures = sum(e.get("figures", 0) for e in registry.values())
        print(f"{name}\t{len(registry)} files\t{store.collection(name).count()} passages\t{figures} figures")


@material_app.command("show")
def show_command(
    name: str = typer.Argument(..., help="The material."),
    as_json: bool = typer.Option(False, "--json", help="Print every passage (text, place, figures) as JSON."),
) -> None:
    """A material's passages, each with its file and page/slide/section, and the figures linked to it."""
    from coe.ingest import store
    from coe.ingest.figures import load
    from coe.ingest.retrieve import LOCATION_KEYS

    store.existing_material(name)
    rows = store.passages(name)
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "id": r["id"],
                        "text": r["text"],
                        "file": r["metadata"].get("file_name"),
                        **{k: r["metadata"][k] for k in LOCATION_KEYS if r["metadata"].get(k) not in (None, "")},
                        "figures": load(r["metadata"].get("figures")),
                    }
                    for r in rows
                ],
                ensure_ascii=False,
            )
        )
        return
    out = Console(emoji=False)  # ":x:" in a passage is text, not an emoji
    for r in rows:
        meta = r["metadata"]
        where = next((f"{k} {meta[k]}" for k in ("page", "slide", "section") if meta.get(k) not in (None, "")), "")
        text = one_line(r["text"])
        out.print(
            f"[bold]{escape(meta.get('file_name', ''))}[/bold] {escape(where)}: {escape(text[:160])}", highlight=False
        )
        for fig in load(meta.get("figures")):
            out.print(
                f"    figure {escape(fig['id'])} ({escape(fig['path'])}): {escape(fig.get('caption', ''))}",
                highlight=False,
            )


@material_app.command("remove")
def remove_command(name: str = typer.Argument(..., help="The material.")) -> None:
    """Delete a material: its passages, figures and records."""
    from coe.ingest import store

    store.remove_material(name)
    print(f"removed {name}")
