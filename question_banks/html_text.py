"""HTML as the quiz formats carry it (Moodle XML, GIFT ``[html]``, QTI) turned into the plain text of an
exemplar, with the standard library's tolerant HTML parser: tags dropped, entities undone, line breaks kept."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BREAKS = {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"}
_DROPPED = {"script", "style"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in _DROPPED:
            self.skip += 1
        elif tag in _BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in _DROPPED:
            self.skip = max(0, self.skip - 1)
        elif tag in _BREAKS - {"br"}:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    parser = _Text()
    parser.feed(markup)
    parser.close()
    return tidy("".join(parser.parts))


def tidy(text: str) -> str:
    """Runs of spaces as one, each line trimmed, no empty lines."""
    lines = [re.sub(r"[ \t\r\f\v\xa0]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{2,}", "\n", "\n".join(lines)).strip()


def image_sources(markup: str) -> list[str]:
    """The ``src`` of every ``<img>``, in order."""
    found: list[str] = []

    class _Images(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "img":
                src = dict(attrs).get("src")
                if src:
                    found.append(src)

    parser = _Images(convert_charrefs=True)
    parser.feed(markup)
    parser.close()
    return found
