"""Markup as the quiz formats carry it (HTML in Moodle XML and GIFT ``[html]``, QTI's XHTML) turned into the
plain text of an exemplar: tags dropped, entities undone, each block element on lines of its own."""

from __future__ import annotations

import re

import lxml.html
from lxml import etree

HTML_BLOCKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})
_HTML_DROPPED = frozenset({"script", "style"})


def html_to_text(markup: str) -> str:
    """The text of an HTML fragment or document, parsed by lxml (libxml2's tolerant HTML parser)."""
    if not markup.strip():
        return ""
    try:
        # as bytes with their encoding named: a string with an XML declaration is refused as a str
        root = lxml.html.document_fromstring(markup.encode("utf-8"), parser=lxml.html.HTMLParser(encoding="utf-8"))
    except etree.ParserError:  # nothing but comments
        return ""
    return element_text(root, HTML_BLOCKS, _HTML_DROPPED)


def element_text(root, blocks: frozenset[str] | set[str], skipped: frozenset[str] | set[str]) -> str:
    """The text under an lxml element (HTML or namespaced XML: tags are compared by local name), with the
    ``blocks`` on lines of their own and the ``skipped`` elements left out (their tails stay); comments and
    processing instructions are no text."""
    parts: list[str] = []

    def walk(e) -> None:
        tag = e.tag.rsplit("}", 1)[-1] if isinstance(e.tag, str) else None
        if tag is None or tag in skipped:
            return
        if tag in blocks:
            parts.append("\n")
        parts.append(e.text or "")
        for child in e:
            walk(child)
            parts.append(child.tail or "")
        if tag in blocks:
            parts.append("\n")

    walk(root)
    return tidy("".join(parts))


def tidy(text: str) -> str:
    """Runs of spaces as one, each line trimmed, no empty lines."""
    lines = [re.sub(r"[ \t\r\f\v\xa0]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{2,}", "\n", "\n".join(lines)).strip()
