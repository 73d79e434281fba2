"""IMS QTI 2.1 content package: a zip with ``imsmanifest.xml`` and one ``assessmentItem`` per item.

Each item is a single-choice ``choiceInteraction`` whose ``responseDeclaration`` names the correct choice.
Response processing scores it and sets ``FEEDBACK`` to the chosen identifier plus ``RATIONALE``, so the
rationale is shown after any answer and a distractor's note when that distractor was chosen (one
``modalFeedback`` each). The image travels as a file in the package, referenced by ``<img>``.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from lxml import etree

from coe.atomic import write_bytes
from coe.exports.item import ExportItem, check_unique_ids
from coe.text import one_line

QTI = "http://www.imsglobal.org/xsd/imsqti_v2p1"
CP = "http://www.imsglobal.org/xsd/imscp_v1p1"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
QTI_XSD = "http://www.imsglobal.org/xsd/qti/qtiv2p1/imsqti_v2p1p2.xsd"
CP_XSD = "http://www.imsglobal.org/xsd/qti/qtiv2p1/qtiv2p1_imscpv1p2_v1p0.xsd"
RATIONALE = "RATIONALE"


def _q(parent: etree._Element | None, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    if parent is None:
        # lxml takes None as the default namespace's prefix; lxml-stubs type nsmap's keys as str only
        el = etree.Element(f"{{{QTI}}}{tag}", attrs, nsmap={None: QTI, "xsi": XSI})  # type: ignore[dict-item]
    else:
        el = etree.SubElement(parent, f"{{{QTI}}}{tag}", attrs)
    if text is not None:
        el.text = text
    return el


def _lines(parent: etree._Element, text: str) -> etree._Element:
    """``text`` into ``parent`` with its line breaks as ``<br/>``."""
    first, *rest = text.split("\n")
    parent.text = first
    for line in rest:
        _q(parent, "br").tail = line
    return parent


def item_identifier(item: ExportItem) -> str:
    # QTI identifiers must not start with a digit; run ids do.
    return f"item-{item.id}"


def item_href(item: ExportItem) -> str:
    # "item-" keeps an id such as "imsmanifest" from naming a second manifest
    return f"item-{item.id}.xml"


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``name`` with a number before its suffix when a member differing only in case exists
    (unzipped on a case-insensitive file system, one would overwrite the other)."""
    stem, dot, suffix = name.rpartition(".")
    candidate, n = name, 1
    while candidate.casefold() in used:
        n += 1
        candidate = f"{stem}-{n}{dot}{suffix}"
    used.add(candidate.casefold())
    return candidate


def render_item(item: ExportItem, image_href: str | None = None) -> bytes:
    """One ``assessmentItem``; ``image_href`` is where the package keeps the item's image (items sit at
    the package root, so it is relative to both)."""
    root = _q(
        None,
        "assessmentItem",
        identifier=item_identifier(item),
        title=one_line(item.question)[:100],
        adaptive="false",
        timeDependent="false",
    )
    root.set(f"{{{XSI}}}schemaLocation", f"{QTI} {QTI_XSD}")
    for note in item.review_notes():  # for the reviewer reading the package; players skip comments
        root.append(etree.Comment(f" review: {one_line(note)} ".replace("--", "- -")))
    options = item.options()
    response = _q(root, "responseDeclaration", identifier="RESPONSE", cardinality="single", baseType="identifier")
    _q(_q(response, "correctResponse"), "value", item.correct_option().letter)
    score = _q(root, "outcomeDeclaration", identifier="SCORE", cardinality="single", baseType="float")
    _q(_q(score, "defaultValue"), "value", "0")
    _q(root, "outcomeDeclaration", identifier="FEEDBACK", cardinality="multiple", baseType="identifier")

    body = _q(root, "itemBody")
    _lines(_q(body, "p"), item.question)
    if image_href is not None:
        _q(_q(body, "p"), "img", src=image_href, alt=one_line(item.question)[:100])
    choices = _q(body, "choiceInteraction", responseIdentifier="RESPONSE", shuffle="true", maxChoices="1")
    for option in options:
        _lines(_q(choices, "simpleChoice", identifier=option.letter), option.text)

    processing = _q(root, "responseProcessing")
    condition = _q(processing, "responseCondition")
    branch = _q(condition, "responseIf")
    match = _q(branch, "match")
    _q(match, "variable", identifier="RESPONSE")
    _q(match, "correct", identifier="RESPONSE")
    _q(_q(branch, "setOutcomeValue", identifier="SCORE"), "baseValue", "1", baseType="float")
    _q(_q(_q(condition, "responseElse"), "setOutcomeValue", identifier="SCORE"), "baseValue", "0", baseType="float")
    feedback = _q(_q(processing, "setOutcomeValue", identifier="FEEDBACK"), "multiple")
    _q(feedback, "variable", identifier="RESPONSE")
    _q(feedback, "baseValue", RATIONALE, baseType="identifier")

    if item.rationale:
        _lines(
            _q(_q(root, "modalFeedback", outcomeIdentifier="FEEDBACK", identifier=RATIONALE, showHide="show"), "p"),
            item.rationale,
        )
    for option in options:
        if option.feedback:
            _lines(
                _q(
                    _q(root, "modalFeedback", outcomeIdentifier="FEEDBACK", identifier=option.letter, showHide="show"),
                    "p",
                ),
                option.feedback,
            )
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _manifest(entries: list[tuple[ExportItem, str, str | None]]) -> bytes:
    # None: the default namespace (lxml-stubs type nsmap's keys as str only)
    root = etree.Element(f"{{{CP}}}manifest", identifier="MANIFEST-coe", nsmap={None: CP, "xsi": XSI})  # type: ignore[dict-item]
    root.set(f"{{{XSI}}}schemaLocation", f"{CP} {CP_XSD}")
    metadata = etree.SubElement(root, f"{{{CP}}}metadata")
    etree.SubElement(metadata, f"{{{CP}}}schema").text = "QTIv2.1 Package"
    etree.SubElement(metadata, f"{{{CP}}}schemaversion").text = "1.0.0"
    etree.SubElement(root, f"{{{CP}}}organizations")
    resources = etree.SubElement(root, f"{{{CP}}}resources")
    for item, href, image_path in entries:
        resource = etree.SubElement(
            resources, f"{{{CP}}}resource", identifier=f"RES-{item.id}", type="imsqti_item_xmlv2p1", href=href
        )
        etree.SubElement(resource, f"{{{CP}}}file", href=href)
        if image_path is not None:
            etree.SubElement(resource, f"{{{CP}}}file", href=image_path)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def render(items: list[ExportItem]) -> bytes:
    """The zipped package for ``items``."""
    check_unique_ids(items)
    buffer = io.BytesIO()
    entries: list[tuple[ExportItem, str, str | None]] = []
    used = {"imsmanifest.xml"}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        for item in items:
            image = item.embedded_image()
            image_path = None
            if image is not None:
                image_path = _unique(f"images/{image.name}", used)
                package.writestr(image_path, image.data)
            href = _unique(item_href(item), used)
            package.writestr(href, render_item(item, image_path))
            entries.append((item, href, image_path))
        package.writestr("imsmanifest.xml", _manifest(entries))
    return buffer.getvalue()


def write(items: list[ExportItem], out: Path) -> Path:
    return write_bytes(out, render(items))
