"""Plain model text turned into what the formats carry: escaped HTML, or one line."""

from __future__ import annotations

import html


def to_html(text: str) -> str:
    """Plain text as an HTML fragment: ``<`` and ``&`` shown as written, line breaks kept as ``<br>``."""
    return "<br>".join(html.escape(line, quote=False) for line in text.split("\n"))


def fold(text: str) -> str:
    """Text on one line, for line-based formats (runs of whitespace, newlines included, become a space)."""
    return " ".join(text.split())
