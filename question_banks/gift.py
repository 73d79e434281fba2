"""GIFT, Moodle's text format, read one question at a time so that a broken question is reported with its
line and the others are still read.

A small parser of our own: ua-exam's (the GIFT reader the export tests use) stops at the first error of a
file, drops feedback, and undoes HTML entities before GIFT's escapes, which loses ``&lt;`` written in
``[html]`` text. The rules followed are Moodle's importer's: ``//`` comment lines, questions separated by
blank lines, ``$CATEGORY:`` lines, ``::title::``, an optional ``[html]``/``[moodle]``/``[plain]``/``[markdown]``
format, ``=``/``~`` options with ``%weight%`` and ``#feedback``, ``####`` general feedback, text after the
answer block (the missing-word form), and backslash escapes of ``~ = # { } :`` (``\\n`` a line break)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from .html_text import html_to_text
from .records import ParsedQuestion, Problem

_SPECIAL = "~=#{}:"
_FORMAT = re.compile(r"^\s*\[(html|moodle|plain|markdown)\]", re.IGNORECASE)
_WEIGHT = re.compile(r"^%(-?\d+(?:\.\d+)?)%")
_BLANK = "_____"
_LINES = re.compile(r"([^\r\n]*)(?:\r\n|\r|\n|$)")


# A question whose block is longer than this cannot pass the field limits of an exemplar; it is reported
# without being tokenized, so neither time nor memory grows with a hostile block's length.
MAX_BLOCK_CHARS = 64_000


def blocks(text: str) -> Iterator[tuple[int, str | None]]:
    """The question blocks with the line each starts on: comment lines out, blank lines between; ``None``
    for a block over ``MAX_BLOCK_CHARS`` (its lines are not kept)."""
    start, lines, size, number = 0, [], 0, 0
    for line in _lines(text):
        number += 1
        if line.lstrip().startswith("//"):
            continue
        if line.strip():
            if not size:
                start = number
            size += len(line) + 1
            if size <= MAX_BLOCK_CHARS:
                lines.append(line)
        elif size:
            yield start, "\n".join(lines) if size <= MAX_BLOCK_CHARS else None
            lines, size = [], 0
    if size:
        yield start, "\n".join(lines) if size <= MAX_BLOCK_CHARS else None


def _lines(text: str) -> Iterator[str]:
    """``text.splitlines()`` one line at a time (a list of every line of a large file is what costs)."""
    for found in _LINES.finditer(text):
        yield found.group(1)


def tokens(block: str) -> list[tuple[str, str]]:
    """``("TEXT", text)`` with escapes undone, or ``(special, special)`` for an unescaped ``{ } = ~ # ::``."""
    out: list[tuple[str, str]] = []
    text: list[str] = []
    i = 0
    while i < len(block):
        c = block[i]
        if c == "\\" and i + 1 < len(block):
            nxt = block[i + 1]
            text.append("\n" if nxt == "n" else nxt if nxt in _SPECIAL + "\\" else c + nxt)
            i += 2
            continue
        special = "::" if block.startswith("::", i) else c if c in "{}=~#" else None
        if special is None:
            text.append(c)
            i += 1
            continue
        if text:
            out.append(("TEXT", "".join(text)))
            text = []
        out.append((special, special))
        i += len(special)
    if text:
        out.append(("TEXT", "".join(text)))
    return out


def _joined(toks: list[tuple[str, str]]) -> str:
    return "".join(v for _, v in toks)


def _option(toks: list[tuple[str, str]]) -> tuple[str, float | None, str]:
    """An option's text, its weight (``%50%``) and its feedback."""
    text: list[str] = []
    feedback: list[str] = []
    into: list[str] | None = None
    for kind, value in toks:
        if kind == "#" and into is None:
            into = feedback
            continue
        (into if into is not None else text).append(value)
    body = "".join(text).strip()
    weight = None
    if found := _WEIGHT.match(body):
        weight, body = float(found.group(1)), body[found.end() :].strip()
    return body, weight, "".join(feedback).strip()


def parse_block(line: int, block: str) -> ParsedQuestion | Problem | None:
    where = f"line {line}"
    if block.lstrip().upper().startswith("$CATEGORY:"):
        return None
    toks = tokens(block)
    i = 0
    if toks and toks[0][0] == "TEXT" and not toks[0][1].strip() and len(toks) > 1:
        i = 1
    if i < len(toks) and toks[i][0] == "::":
        try:
            i = toks.index(("::", "::"), i + 1) + 1
        except ValueError:
            return Problem(where, "the title has no closing '::'", "malformed")
    try:
        opening = toks.index(("{", "{"), i)
    except ValueError:
        return Problem(where, "no answer block '{...}' (escape a literal brace as \\{)", "malformed")
    closing = next((j for j in range(opening + 1, len(toks)) if toks[j][0] in "{}"), None)
    if closing is None or toks[closing][0] == "{":
        return Problem(where, "the answer block has no closing '}' (or an unescaped '{' inside it)", "malformed")
    if any(k in "{}" for k, _ in toks[closing + 1 :]):
        return Problem(where, "more than one answer block", "malformed")
    stem, tail = _joined(toks[i:opening]), _joined(toks[closing + 1 :])
    fmt = "moodle"
    if found := _FORMAT.match(stem):
        fmt, stem = found.group(1).lower(), stem[found.end() :]
    plain = html_to_text if fmt == "html" else (lambda s: s.strip())
    question = plain(stem) + (f" {_BLANK} {plain(tail)}" if tail.strip() else "")
    return _answers(where, toks[opening + 1 : closing], question, plain)


def _answers(where: str, toks: list[tuple[str, str]], question: str, plain) -> ParsedQuestion | Problem:
    body = _joined(toks).strip()
    kinds = [k for k, _ in toks]
    if not body:
        return Problem(where, "an essay question (empty answer block), not multiple choice")
    if "=" not in kinds and "~" not in kinds:
        if body.startswith("#"):
            return Problem(where, "a numerical question, not multiple choice")
        if re.fullmatch(r"(T|TRUE|F|FALSE)\b.*", body, re.IGNORECASE | re.DOTALL):
            return Problem(where, "a true/false question, not multiple choice")
        return Problem(where, "the answer block has no '=' or '~' option", "malformed")
    rationale = ""
    if ("#", "#") in toks:  # general feedback: four '#' in a row
        for j in range(len(toks) - 3):
            if kinds[j : j + 4] == ["#"] * 4:
                rationale, toks, kinds = _joined(toks[j + 4 :]), toks[:j], kinds[:j]
                break
    options: list[tuple[bool, list[tuple[str, str]]]] = []
    for kind, value in toks:
        if kind in "=~":
            options.append((kind == "=", []))
        elif options:
            options[-1][1].append((kind, value))
        elif value.strip():
            return Problem(where, "text before the first option in the answer block", "malformed")
    if all(marked for marked, _ in options):  # Moodle reads '=' options alone as accepted short answers
        return Problem(where, "a short-answer question (no '~' wrong option), not multiple choice")
    correct: list[str] = []
    wrong: list[str] = []
    for marked, option in options:
        text, weight, _ = _option(option)
        if "->" in text:
            return Problem(where, "a matching question, not multiple choice")
        if weight is not None and 0 < weight < 100:
            return Problem(where, "partial credit: not a question with one correct answer")
        (correct if (weight == 100 or (weight is None and marked)) else wrong).append(plain(text))
    if len(correct) != 1:
        return Problem(
            where,
            f"{len(correct)} correct answers; an exemplar needs exactly one"
            if correct
            else "no correct answer (no '=' option)",
        )
    if not wrong:
        return Problem(where, "no wrong option besides the correct answer")
    return ParsedQuestion(where, question, correct[0], wrong, rationale=plain(rationale))


def parse(data: bytes) -> Iterator[ParsedQuestion | Problem]:
    """The file's questions and problems one at a time, so an import can stop at its question limit."""
    from .textfile import decode

    text = decode(data)
    for line, block in blocks(text):
        if block is None:
            yield Problem(f"line {line}", f"the question is longer than {MAX_BLOCK_CHARS} characters", "malformed")
        elif (found := parse_block(line, block)) is not None:
            yield found
