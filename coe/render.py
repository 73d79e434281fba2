"""Human-readable output of a generated item."""

from __future__ import annotations

import random

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from coe.text import LETTERS


def show_item(item, console: Console, *, shuffle_seed: int = 0) -> None:
    options = [(item.answer, True)] + [(d, False) for d in item.distractors]
    random.Random(shuffle_seed).shuffle(options)  # a fixed shuffle so reruns print the same layout
    lines = [f"[bold]{item.question}[/bold]", ""]
    v = item.verification or {}
    probs, also = v.get("option_probs", {}), v.get("also_correct", {})
    why = dict(zip(item.distractors, item.distractor_notes))
    for letter, (text, correct) in zip(LETTERS, options):
        mark = "  [green](correct)[/green]" if correct else ""
        check = ""
        if text in probs:
            also_correct = f", also-correct {also[text]:.2f}" if text in also else ""
            check = f"  [dim]student {probs[text]:.2f}{also_correct}[/dim]"
        lines.append(f"  {letter}. {text}{mark}{check}")
        if text in why:
            lines.append(f"      [dim italic]why tempting: {why[text]}[/dim italic]")
    if item.rationale:
        lines += ["", f"[italic]Rationale:[/italic] {item.rationale}"]
    if item.status == "verified":
        lines += [
            "",
            f"[green]Verified[/green] · difficulty {item.difficulty} · key probability {v.get('key_prob', 0):.2f}",
        ]
    elif item.status == "unconfirmed":
        lines += [
            "",
            f"[yellow]Unconfirmed[/yellow] · no check found a problem, but no model could confirm the "
            f"key · difficulty {item.difficulty}",
        ]
        if item.check:
            lines.append(f"  [bold yellow]{escape(item.check)}[/bold yellow]")
    elif item.status == "flagged":
        lines += ["", "[bold red]Flagged — check before use:[/bold red]", *[f"  - {r}" for r in item.reasons]]
    else:
        lines += ["", "[yellow]Not verified[/yellow] (verification was off)"]
    for w in [w for w in v.get("warnings", []) if w != item.check]:
        lines.append(f"  [yellow]note:[/yellow] {w}")
    if item.repaired:
        lines += ["", f"[yellow]Filled from exemplars after validation:[/yellow] {', '.join(item.repaired)}"]
    console.print(Panel("\n".join(lines), title=f"MCQ · {item.model}", expand=False))
    if item.exemplars:
        t = Table(title="Exemplars that guided it", show_lines=False)
        for col in ("id", "score", "question", "answer"):
            t.add_column(col)
        for e in [e for e in item.exemplars if e.get("in_prompt", True)]:
            t.add_row(e["id"], f"{e['score']:.3f}", e["question"], e["answer"])
        console.print(t)
    t = Table(title=f"Trace ({item.seconds:.1f} s)")
    t.add_column("node")
    t.add_column("seconds", justify="right")
    t.add_column("notes")
    for step in item.trace:
        notes = step.get("skipped") or ("; ".join(step.get("problems", [])) or step.get("repair", ""))
        if step.get("usage"):
            notes = f"{step['usage']['prompt_tokens']}+{step['usage']['completion_tokens']} tokens {notes}".strip()
        elif step.get("source") in ("learned ranking", "pool ranking"):  # picked without a model call
            notes = f"{step['source']}, no model call {notes}".strip()
        t.add_row(step["node"], f"{step.get('seconds', 0):.2f}", str(notes)[:80])
    console.print(t)
