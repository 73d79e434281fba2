"""Plain model text turned into what the formats carry: escaped HTML (one line is ``coe.text.one_line``)."""

from __future__ import annotations

import html


def to_html(text: str) -> str:
    """Plain text as an HTML fragment: ``<`` and ``&`` shown as written, line breaks kept as ``<br>``."""
    return "<br>".join(html.escape(line, quote=False) for line in text.split("\n"))
