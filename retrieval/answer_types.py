"""Coarse answer types, so exemplars and repair distractors have the same shape as the answer."""

from __future__ import annotations

import re

_NUMBER = re.compile(r"^[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")
_QUANTITY = re.compile(r"^[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?\s*\S+")
_BOOLEAN = {"yes", "no", "true", "false"}

TYPES = ("boolean", "number", "quantity", "word", "phrase", "sentence")
_SHORT = {("word", "phrase"), ("phrase", "word")}
_LAX = _SHORT | {("phrase", "sentence"), ("sentence", "phrase")}


def answer_type(answer: str) -> str:
    a = answer.strip().rstrip(".").strip()
    low = a.lower()
    if low in _BOOLEAN:
        return "boolean"
    if _NUMBER.match(a):
        return "number"
    if _QUANTITY.match(a) and len(a.split()) <= 4:
        return "quantity"
    words = a.split()
    if len(words) <= 1:
        return "word"
    if len(words) <= 6 and not answer.strip().endswith((".", "!", "?")):
        return "phrase"
    return "sentence"


def compatible(a: str, b: str, *, strict: bool = False) -> bool:
    """True when answers of type a and type b can stand in the same option list.

    ``strict`` is for options placed beside the answer; the lax form suits exemplar similarity."""
    return a == b or (a, b) in (_SHORT if strict else _LAX)
