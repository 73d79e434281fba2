"""Moodle XML: one ``multichoice`` question per item, the image embedded in the question text.

Moodle's importer reads an embedded file as a ``<file>`` element (base64) inside ``<questiontext>``,
referenced from the HTML as ``@@PLUGINFILE@@/NAME``. Texts are HTML (``format="html"``): model text is
HTML-escaped first and lxml escapes the XML, so ``<b>`` in a question is shown, not rendered.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from lxml import etree

from coe.atomic import write_bytes
from coe.exports.item import ExportItem
from coe.exports.markup import to_html
from coe.text import one_line


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _html_field(parent: etree._Element, tag: str, content: str) -> etree._Element:
    field = _sub(parent, tag, format="html")
    _sub(field, "text", content)
    return field


def _question(item: ExportItem) -> etree._Element:
    q = etree.Element("question", type="multichoice")
    for note in item.review_notes():  # for the reviewer reading the file; Moodle's importer skips comments
        q.append(etree.Comment(f" review: {one_line(note)} ".replace("--", "- -")))
    _sub(_sub(q, "name"), "text", one_line(item.question)[:100])
    image = item.embedded_image()
    body = to_html(item.question)
    if image is not None:
        src = "@@PLUGINFILE@@/" + image.name
        body += f'<br><img src="{html.escape(src)}" alt="{html.escape(image.name)}">'
    questiontext = _html_field(q, "questiontext", body)
    if image is not None:
        _sub(
            questiontext,
            "file",
            base64.b64encode(image.data).decode("ascii"),
            name=image.name,
            path="/",
            encoding="base64",
        )
    _html_field(q, "generalfeedback", to_html(item.rationale or ""))
    _sub(q, "defaultgrade", "1")
    _sub(q, "penalty", "0.3333333")
    _sub(q, "hidden", "0")
    _sub(q, "single", "true")
    _sub(q, "shuffleanswers", "true")
    _sub(q, "answernumbering", "abc")
    for tag in ("correctfeedback", "partiallycorrectfeedback", "incorrectfeedback"):
        _html_field(q, tag, "")
    for option in item.options():
        answer = _sub(q, "answer", fraction="100" if option.correct else "0", format="html")
        _sub(answer, "text", to_html(option.text))
        _html_field(answer, "feedback", to_html(option.feedback))
    tags = _sub(q, "tags")
    for tag in item.tags():
        _sub(_sub(tags, "tag"), "text", tag)
    return q


def render(items: list[ExportItem]) -> bytes:
    """The ``<quiz>`` document for ``items``, UTF-8."""
    quiz = etree.Element("quiz")
    for item in items:
        quiz.append(etree.Comment(f" question: {item.id} ".replace("--", "- -")))
        quiz.append(_question(item))
    return etree.tostring(quiz, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def write(items: list[ExportItem], out: Path) -> Path:
    return write_bytes(out, render(items))
