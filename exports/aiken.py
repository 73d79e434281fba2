"""Aiken: Moodle's plainest multiple-choice format, one question per block.

Each question and option is a single line, so line breaks in any field are folded into spaces. The format
has no feedback, image or metadata: the rationale and notes are left out (use Moodle XML or QTI for them).
It has no escapes either, so a question that itself reads like an option line (``A. ...``) or like the
answer line cannot be written; that is an ``InputError`` rather than a file the importer misreads.
"""

from __future__ import annotations

import re
from pathlib import Path

from coe.atomic import write_bytes
from coe.errors import InputError
from coe.exports.item import ExportItem
from coe.text import one_line

# what Moodle's Aiken importer takes for an option line or the answer line
_OPTION_LINE = re.compile(r"^[A-Z][.)]\s")
_ANSWER_LINE = re.compile(r"^ANSWER:", re.IGNORECASE)


def render_item(item: ExportItem) -> str:
    options = item.options()
    question = one_line(item.question)
    if _OPTION_LINE.match(question) or _ANSWER_LINE.match(question):
        raise InputError(
            f"item {item.id}: Aiken cannot hold a question that starts like an option or "
            f"'ANSWER:' ({question[:40]!r}); export it as Moodle XML, GIFT or QTI"
        )
    lines = [question]
    lines += [f"{o.letter}. {one_line(o.text)}" for o in options]
    lines.append(f"ANSWER: {item.correct_option().letter}")
    return "\n".join(lines) + "\n"


def render(items: list[ExportItem]) -> str:
    return "\n".join(render_item(item) for item in items)


def write(items: list[ExportItem], out: Path) -> Path:
    return write_bytes(out, render(items).encode("utf-8"))
