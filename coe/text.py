"""Text helpers every layer shares: a text folded onto one line, and the letters that label options."""

from __future__ import annotations

# Options are labelled A, B, C, ... in prompts, renderings and exports.
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def one_line(text: object) -> str:
    """``text`` (or an exception's message) on one line: each run of whitespace, newlines included, becomes
    one space, and the ends are trimmed."""
    return " ".join(str(text).split())
