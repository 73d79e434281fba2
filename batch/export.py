"""``coe batch export``: a run's written items, as the reviewer left them, in one LMS format."""

from __future__ import annotations

from pathlib import Path

from coe.errors import InputError

from .ledger import Ledger

SELECTIONS = ("all", "accepted", "verified", "not-rejected")


def selected(entries: list[dict], only: str) -> list[dict]:
    if only not in SELECTIONS:
        raise InputError(f"--only must be one of: {', '.join(SELECTIONS)}")
    done = [e for e in entries if e["state"] == "done"]
    if only == "accepted":
        return [e for e in done if e["decision"] == "accepted"]
    if only == "verified":
        return [e for e in done if e["status"] == "verified" and e["decision"] != "rejected"]
    if only == "not-rejected":
        return [e for e in done if e["decision"] != "rejected"]
    return done


def _items(run_dir: str | Path, only: str) -> list:
    from coe.exports import ExportItem

    with Ledger(run_dir, create=False) as ledger:
        seed = (ledger.meta().get("settings") or {}).get("seed")
        entries = selected(ledger.entries(states=("done",)), only)
    if not entries:
        raise InputError(f"nothing to export: the run has no {'' if only == 'all' else only + ' '}items")
    return [ExportItem.from_record(e["item"], id=e["id"], seed=seed, tags=e["tags"]) for e in entries]


def render_run(run_dir: str | Path, fmt: str, *, only: str = "all") -> tuple[bytes, int]:
    """The file ``export_run`` would write, as bytes (the console's download), and its item count."""
    from coe.exports import render

    items = _items(run_dir, only)
    return render(items, fmt), len(items)


def export_run(run_dir: str | Path, fmt: str, out: str | Path, *, only: str = "all") -> tuple[Path, int]:
    """Write the run's items (``only``: all written items, the accepted ones, the verified ones not
    rejected, or all not rejected) as ``fmt``; returns the path and how many items it holds."""
    from coe.exports import export

    items = _items(run_dir, only)
    return export(items, fmt, out), len(items)
