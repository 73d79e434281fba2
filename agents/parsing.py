"""Parsers for both output modes: schema JSON and the paper's free-text shapes."""

from __future__ import annotations

import re
from typing import Any

from coe.plugins.llm.reply import parse_json_text
from coe.plugins.llm.reply import cut_off_value
from coe.text import one_line

_NUMBERED = re.compile(r"(?:^|\n|\s)\(?(\d{1,2})[).:]\s*(.+?)(?=(?:\n|\s)\(?\d{1,2}[).:]\s|\n\s*\n|$)", re.S)


def prefixed(text: str, prefix: str) -> str:
    """Text after ``prefix:`` (paper shape), else the whole reply."""
    m = re.search(rf"{prefix}\s*:\s*(.+)", text, re.I | re.S)
    return one_line(m.group(1) if m else text)


def numbered_list(text: str) -> list[str]:
    """``(1) a\\n(2) b`` or ``1. a 2. b`` → ["a", "b"]; a plain one-per-line list also works."""
    items = [one_line(m.group(2)) for m in _NUMBERED.finditer(text)]
    if items:
        return [i for i in items if i]
    return [one_line(line.lstrip("-*• ")) for line in text.splitlines() if line.strip()]


def salvage_truncated(text: str, key: str) -> str | None:
    """A reply cut off by the token limit inside ``key``'s text: keep its complete sentences."""
    value = cut_off_value(text, key)
    if value is None:
        return None
    end = max(value.rfind(". "), value.rfind(".\n"), value.rfind(".") if value.endswith(".") else -1)
    return value[: end + 1].strip() if end > 0 else None


def json_field(data: Any, text: str, key: str) -> Any:
    if data is None:
        data = parse_json_text(text)
    if not isinstance(data, dict) or key not in data:
        raise ValueError(f"JSON reply lacks {key!r}")
    return data[key]


def text_field(data: Any, text: str, key: str, mode: str, prefix: str, max_chars: int,
               salvage: bool = False) -> str:
    if mode != "json":
        value = prefixed(text, prefix)
    else:
        try:
            value = json_field(data, text, key)
        except ValueError:
            value = salvage_truncated(text, key) if salvage else None
            if value is None:
                raise
    if not isinstance(value, str):
        raise ValueError(f"{key} is not text")
    value = one_line(value)
    if not value:
        raise ValueError(f"{key} is empty")
    if len(value) > max_chars:
        raise ValueError(f"{key} is longer than {max_chars} characters")
    return value


def list_field(data: Any, text: str, key: str, mode: str) -> list:
    value = json_field(data, text, key) if mode == "json" else numbered_list(text)
    if not isinstance(value, list):
        raise ValueError(f"{key} is not a list")
    return value


def drop_repeated_sentences(text: str) -> str:
    """Small models loop; a sentence said twice is kept once."""
    seen: set[str] = set()
    kept = []
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        key = re.sub(r"\W+", " ", sentence.lower()).strip()
        if key and key not in seen:
            seen.add(key)
            kept.append(sentence)
    return " ".join(kept)
