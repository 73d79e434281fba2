"""Moodle XML banks: ``multichoice`` questions with their embedded pictures (``<file encoding="base64">``).

Parsed with defusedxml: a file that declares entities (the way an XML external entity or an entity bomb
arrives) is refused as a whole, nothing outside the file is ever read, and element count and nesting depth
are capped. Questions are numbered in file
order (every ``<question>`` element, categories included, counts), which is how problems are reported."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator

from coe.errors import InputError

from .html_text import html_to_text
from .records import Image, ParsedQuestion, Problem

_CDATA = re.compile(r"^\s*<!\[CDATA\[(.*)\]\]>\s*$", re.DOTALL)
_HTML_FORMATS = {"html", "moodle_auto_format", ""}


def parse_xml(data: bytes, what: str):
    """The root element of ``data``, read without entities, DTD lookups or network access, within the
    element, depth and size limits of ``coe.bounded_xml``."""
    from coe.bounded_xml import parse_xml as bounded

    return bounded(data, what, max_bytes=max(len(data), 1))


def _text(field, default_format: str = "html") -> str:
    """A ``<questiontext>``/``<answer>``/``<feedback>`` element's text as plain text."""
    if field is None:
        return ""
    node = field.find("text")
    raw = (node.text if node is not None else field.text) or ""
    # some writers put a CDATA section into the text as characters; what they meant is its content
    if found := _CDATA.match(raw):
        raw = found.group(1)
    fmt = (field.get("format") or default_format).lower()
    return html_to_text(raw) if fmt in _HTML_FORMATS else raw.strip()


def _fraction(answer) -> float | None:
    try:
        return float((answer.get("fraction") or "0").strip())
    except ValueError:
        return None


def _question(where: str, q) -> ParsedQuestion | Problem | None:
    kind = (q.get("type") or "").strip()
    if kind == "category":
        return None
    if kind != "multichoice":
        return Problem(where, f"a {kind or 'untyped'} question, not multiple choice")
    body = q.find("questiontext")
    default = (body.get("format") if body is not None else None) or "html"
    answers = q.findall("answer")
    fractions = [f for f in map(_fraction, answers) if f is not None]
    if len(fractions) != len(answers):
        return Problem(where, "an answer has a fraction that is not a number", "malformed")
    if any(0 < f < 100 for f in fractions):
        return Problem(where, "partial credit: not a question with one correct answer")
    correct = [a for a, f in zip(answers, fractions) if f >= 100]
    if len(correct) != 1:
        return Problem(where, f"{len(correct)} answers with fraction 100; an exemplar needs exactly one")
    images: list[Image] = []
    for n, file in enumerate(body.findall("file") if body is not None else [], 1):
        if (file.get("encoding") or "base64") != "base64":
            continue
        try:
            images.append(Image(file.get("name") or f"image-{n}", base64.b64decode(file.text or "", validate=False)))
        except (binascii.Error, ValueError):
            return Problem(where, f"embedded file {file.get('name')!r} is not valid base64", "malformed")
    return ParsedQuestion(
        where,
        _text(body),
        _text(correct[0], default),
        [_text(a, default) for a, f in zip(answers, fractions) if f < 100],
        rationale=_text(q.find("generalfeedback"), default),
        images=images,
    )


def parse(data: bytes) -> Iterator[ParsedQuestion | Problem]:
    root = parse_xml(data, "the Moodle XML file")
    if root.tag != "quiz":
        raise InputError(f"not a Moodle XML quiz: the root element is <{root.tag}>, not <quiz>")
    for n, q in enumerate(root.iterfind("question"), 1):
        found = _question(f"question {n}", q)
        if found is not None:
            yield found
