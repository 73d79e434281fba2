"""CSV and JSONL: every field of every item, with its checks and provenance, for spreadsheets and scripts.

JSONL is one JSON object per line (``ExportItem`` as it is, the options in export order added). CSV has
one row per item; list fields are JSON arrays in their cell, so nothing is lost to a separator, and
options are ``option_A`` ... columns with ``correct`` naming the letter. The image is its file name only:
these formats carry no bytes. A CSV cell that a spreadsheet would run as a formula starts with ``'``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from coe.atomic import write_bytes
from coe.exports.item import ExportItem
from coe.text import LETTERS


COLUMNS = (
    "id",
    "question",
    "answer",
    "distractors",
    "correct",
    "rationale",
    "distractor_notes",
    "image",
    "status",
    "reasons",
    "difficulty",
    "model",
    "exemplar_ids",
    "prompt_version",
    "seed",
    "tags",
    "source",
    "check",
)


CSV_ENCODING = "utf-8-sig"  # with a BOM, so spreadsheet programs read it as UTF-8
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula: OWASP's leading ``'`` before a first
    ``= + - @``, tab or carriage return."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def record(item: ExportItem) -> dict[str, Any]:
    """The item as JSONL writes it."""
    data = item.model_dump(mode="json")
    if item.image is not None:
        data["image"] = Path(item.image).name
    data["options"] = [o.model_dump() for o in item.options()]
    data["correct"] = item.correct_option().letter
    return data


def render_jsonl(items: list[ExportItem]) -> str:
    return "".join(json.dumps(record(item), ensure_ascii=False) + "\n" for item in items)


def _row(item: ExportItem) -> dict[str, str]:
    p = item.provenance
    row = {
        "id": item.id,
        "question": item.question,
        "answer": item.answer,
        "distractors": json.dumps(item.distractors, ensure_ascii=False),
        "correct": item.correct_option().letter,
        "rationale": item.rationale or "",
        "distractor_notes": json.dumps(item.distractor_notes, ensure_ascii=False),
        "image": Path(item.image).name if item.image else "",
        "status": item.status,
        "reasons": json.dumps(item.reasons, ensure_ascii=False),
        "difficulty": item.difficulty or "",
        "model": p.model,
        "exemplar_ids": json.dumps(p.exemplar_ids),
        "prompt_version": p.prompt_version,
        "seed": "" if p.seed is None else str(p.seed),
        "tags": json.dumps(p.tags, ensure_ascii=False),
        "source": json.dumps(p.source, ensure_ascii=False) if p.source else "",
        "check": item.check or "",
    }
    for option in item.options():
        row[f"option_{option.letter}"] = option.text
        row[f"feedback_{option.letter}"] = option.feedback
    return {k: spreadsheet_safe(v) for k, v in row.items()}


def render_csv(items: list[ExportItem]) -> str:
    rows = [_row(item) for item in items]
    width = max((len(item.distractors) + 1 for item in items), default=0)
    columns = [*COLUMNS, *(f"{kind}_{LETTERS[i]}" for i in range(width) for kind in ("option", "feedback"))]
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_jsonl(items: list[ExportItem], out: Path) -> Path:
    return write_bytes(out, render_jsonl(items).encode("utf-8"))


def write_csv(items: list[ExportItem], out: Path) -> Path:
    # a BOM so that spreadsheet programs read the file as UTF-8 (é, 中文)
    return write_bytes(out, render_csv(items).encode(CSV_ENCODING))
