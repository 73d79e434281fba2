"""Aiken, Moodle's plainest format, read with the rules of Moodle's importer: a question line, option lines
``A.`` or ``A)``, then ``ANSWER: X``; blocks are separated by blank lines. A block that breaks the rules is
reported with its line, and the next block is read."""

from __future__ import annotations

import re
from collections.abc import Iterator

from .records import ParsedQuestion, Problem
from .textfile import decode

_OPTION = re.compile(r"^([A-Z])[.)]\s+(.*)$")
_ANSWER = re.compile(r"^ANSWER:\s*([A-Z])\s*$", re.IGNORECASE)


def _block(start: int, lines: list[str]) -> ParsedQuestion | Problem:
    where = f"line {start}"
    question, *rest = lines
    answer = _ANSWER.match(rest[-1]) if rest else None
    if answer is None:
        return Problem(where, "no 'ANSWER: X' line at the end of the question", "malformed")
    options: dict[str, str] = {}
    for offset, line in enumerate(rest[:-1], 1):
        found = _OPTION.match(line)
        if not found:
            return Problem(f"line {start + offset}", "not an option line ('A. text' or 'A) text')", "malformed")
        if found.group(1) in options:
            return Problem(f"line {start + offset}", f"option {found.group(1)} appears twice", "malformed")
        options[found.group(1)] = found.group(2).strip()
    key = answer.group(1).upper()
    if key not in options:
        return Problem(f"line {start + len(rest)}", f"the answer {key} is not one of the options", "malformed")
    return ParsedQuestion(where, question.strip(), options[key], [t for k, t in options.items() if k != key])


# A question line, at most 26 options and the answer line: a longer block is not kept line by line.
MAX_BLOCK_LINES = 28


def parse(data: bytes) -> Iterator[ParsedQuestion | Problem]:
    start, lines, count = 0, [], 0
    for number, line in enumerate([*decode(data).splitlines(), ""], 1):
        if line.strip():
            start = start if count else number
            count += 1
            if count <= MAX_BLOCK_LINES:
                lines.append(line.strip())
        elif count:
            yield (
                _block(start, lines)
                if count <= MAX_BLOCK_LINES
                else Problem(f"line {start}", f"more than {MAX_BLOCK_LINES} lines in one question", "malformed")
            )
            lines, count = [], 0


def looks_like(text: str) -> bool:
    return any(_ANSWER.match(line.strip()) for line in text.splitlines()[:200])
