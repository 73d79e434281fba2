"""Reply text helpers of the step contracts (``contracts``): the paper's free-text shapes, a JSON reply cut
off by the token limit, and the clean-up of looping text."""

from __future__ import annotations

import re

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
