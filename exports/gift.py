"""GIFT, Moodle's text format: one multiple-choice question per item.

Every text is written in ``[html]`` mode (HTML-escaped, line breaks as ``<br>``), so ``<b>`` in a question
is shown as written; then GIFT's specials ``~ = # { } :`` and the backslash are escaped with a backslash.
GIFT cannot carry an image: an item's image is left out, with a ``// image: NAME not included`` comment
line above the question (use Moodle XML or QTI to keep it). Status, difficulty and provenance are comment
lines too; the importer ignores them.
"""

from __future__ import annotations

import re
from pathlib import Path

from coe.atomic import write_bytes
from coe.exports.item import ExportItem
from coe.exports.markup import to_html
from coe.text import one_line

_SPECIALS = re.compile(r"([\\~=#{}:])")
_LEADING_PERCENT = re.compile(r"^(\s*)%")


def escape(text: str, *, answer: bool = False) -> str:
    """``text`` as a GIFT field: HTML-escaped, then each GIFT special preceded by a backslash.

    An answer that starts with ``%`` would be read as a weight (``%50%``) and GIFT has no escape for it,
    so there the ``%`` is written as the HTML entity ``&#37;``."""
    markup = to_html(text)
    if answer:
        markup = _LEADING_PERCENT.sub(r"\1&#37;", markup)
    return _SPECIALS.sub(r"\\\1", markup)


def render_item(item: ExportItem) -> str:
    lines = [
        f"// id: {item.id}",
        *(f"// {one_line(tag)}" for tag in item.tags()),
        *(f"// review: {one_line(note)}" for note in item.review_notes()),
    ]
    if item.image is not None:
        lines.append(f"// image: {one_line(Path(item.image).name)} not included (GIFT cannot embed images)")
    lines.append(f"::{escape(item.id)}::[html]{escape(item.question)} {{")
    for option in item.options():
        feedback = f" #{escape(option.feedback)}" if option.feedback else ""
        lines.append(f"\t{'=' if option.correct else '~'}{escape(option.text, answer=True)}{feedback}")
    if item.rationale:
        lines.append(f"\t####{escape(item.rationale)}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(items: list[ExportItem]) -> str:
    return "\n".join(render_item(item) for item in items)


def write(items: list[ExportItem], out: Path) -> Path:
    return write_bytes(out, render(items).encode("utf-8"))
