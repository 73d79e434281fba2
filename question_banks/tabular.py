"""CSV and JSONL banks: coe's own exports (``coe.exports.tabular``) and what spreadsheets and scripts write.

A record needs ``question`` and its options in one of these shapes:

* ``answer`` and ``distractors`` (a JSON array, or ``;``-separated in a CSV cell);
* ``answer`` and numbered ``distractor_1``, ``distractor_2``, ... columns;
* ``option_A``, ``option_B``, ... (or ``A``, ``B``, ...) and ``correct`` naming the letter (coe's CSV);
* JSONL only: ``options`` as ``[{"text": ..., "correct": true}, ...]`` (coe's JSONL).

``rationale`` (or ``explanation``) and ``context`` are kept when present."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Any

from .records import ParsedQuestion, Problem
from .textfile import decode

_LETTER = re.compile(r"^(?:option_)?([A-Z])$", re.IGNORECASE)
_NUMBERED = re.compile(r"^distractor_?(\d+)$", re.IGNORECASE)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _distractors(value: Any) -> list[str]:
    if isinstance(value, list):
        return [_text(v) for v in value]
    text = _text(value)
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise ValueError("the distractors cell starts like a JSON array but is not one") from None
        if not isinstance(parsed, list):
            raise ValueError("distractors must be a list")
        return [_text(v) for v in parsed]
    return [part.strip() for part in text.split(";")]


def from_record(where: str, record: dict[str, Any]) -> ParsedQuestion | Problem:
    rec = {
        str(k).strip().lower() if not _LETTER.match(str(k).strip()) else str(k).strip(): v
        for k, v in record.items()
        if k is not None
    }
    question = _text(rec.get("question"))
    rationale = _text(rec.get("rationale") or rec.get("explanation"))
    context = _text(rec.get("context"))
    try:
        if isinstance(rec.get("options"), list):
            opts = rec["options"]
            if not all(isinstance(o, dict) for o in opts):
                return Problem(where, "options must be objects with text and correct", "malformed")
            correct = [_text(o.get("text")) for o in opts if o.get("correct") is True]
            if len(correct) != 1:
                return Problem(where, f"{len(correct)} options are marked correct; an exemplar needs exactly one")
            wrong = [_text(o.get("text")) for o in opts if o.get("correct") is not True]
            return ParsedQuestion(where, question, correct[0], wrong, rationale, context)
        letters = {m.group(1).upper(): _text(v) for k, v in rec.items() if (m := _LETTER.match(k)) and _text(v)}
        if letters and _text(rec.get("correct")):
            key = _text(rec.get("correct")).upper()
            if key not in letters:
                return Problem(
                    where,
                    f"correct names {key!r}, which is not one of the options ({', '.join(sorted(letters))})",
                    "malformed",
                )
            return ParsedQuestion(
                where, question, letters[key], [t for k, t in sorted(letters.items()) if k != key], rationale, context
            )
        numbered = sorted((int(m.group(1)), _text(v)) for k, v in rec.items() if (m := _NUMBERED.match(k)))
        if "distractors" in rec:
            wrong = _distractors(rec.get("distractors"))
        elif numbered:
            wrong = [t for _, t in numbered]
        else:
            return Problem(where, "no options: give answer and distractors, or option_A... and correct", "malformed")
        return ParsedQuestion(where, question, _text(rec.get("answer")), wrong, rationale, context)
    except ValueError as exc:
        return Problem(where, str(exc), "malformed")


def parse_csv(data: bytes) -> Iterator[ParsedQuestion | Problem]:
    reader = csv.DictReader(io.StringIO(decode(data), newline=""))
    if not reader.fieldnames or "question" not in [f.strip().lower() for f in reader.fieldnames if f]:
        raise_missing()
    line = reader.line_num + 1
    try:
        for record in reader:
            if None in record:
                yield Problem(f"line {line}", "more cells than columns", "malformed")
            elif any(_text(v) for v in record.values()):
                yield from_record(f"line {line}", record)
            line = reader.line_num + 1
    except csv.Error as exc:
        yield Problem(f"line {line}", f"unreadable CSV ({exc}); the lines after it were not read", "malformed")


def raise_missing() -> None:
    from coe.errors import InputError

    raise InputError("the CSV file has no 'question' column (its first line must name the columns)")


def parse_jsonl(data: bytes) -> Iterator[ParsedQuestion | Problem]:
    for number, line in enumerate(decode(data).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Problem(f"line {number}", f"not JSON ({exc.msg})", "malformed")
            continue
        except RecursionError:
            yield Problem(f"line {number}", "JSON nested too deeply", "malformed")
            continue
        if not isinstance(record, dict):
            yield Problem(f"line {number}", "not a JSON object", "malformed")
            continue
        yield from_record(f"line {number}", record)
