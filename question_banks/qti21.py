"""QTI 2.1: a content package (zip with ``imsmanifest.xml``) or a single ``assessmentItem`` file.

An item becomes an exemplar when it has one ``choiceInteraction`` with a single correct response; its
pictures (``<img src>``) are taken from the package. XML is read as ``moodle_xml.parse_xml`` reads it (no
entities, nothing outside the file), and the package is read in memory within size limits, so neither a
``../`` name nor a zip bomb reaches the disk."""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections.abc import Callable

from coe.errors import InputError
from coe.text import one_line

from coe.bounded_xml import parse_xml as bounded_parse
from coe.bounded_xml import read_member

from .html_text import element_text
from .moodle_xml import parse_xml
from .records import Image, ParsedQuestion, Problem

MAX_MEMBERS = 5000
MAX_MEMBER_BYTES = 64 * 2**20
MAX_PACKAGE_BYTES = 256 * 2**20
_BLOCKS = {"p", "div", "br", "li", "tr", "prompt", "h1", "h2", "h3", "h4", "h5", "h6"}
_SKIPPED = {"choiceInteraction", "feedbackInline", "feedbackBlock", "rubricBlock", "templateBlock"}


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _plain(el, skip: set[str] = _SKIPPED) -> str:
    return element_text(el, _BLOCKS, skip)


def _find(el, tag: str):
    return el.find(f".//{{*}}{tag}")


def parse_item(
    root, where: str, read: Callable[[str], bytes | None] = lambda _: None, base: str = ""
) -> ParsedQuestion | Problem:
    if _local(root.tag) != "assessmentItem":
        return Problem(where, f"not a QTI 2.1 item (root <{_local(root.tag)}>)", "malformed")
    body = _find(root, "itemBody")
    interactions = [e for e in body.iter() if _local(e.tag).endswith("Interaction")] if body is not None else []
    if len(interactions) != 1 or _local(interactions[0].tag) != "choiceInteraction":
        kinds = ", ".join(_local(e.tag) for e in interactions) or "no interaction"
        return Problem(where, f"not a single choice interaction ({kinds})")
    choice = interactions[0]
    response = choice.get("responseIdentifier") or "RESPONSE"
    declaration = next(
        (d for d in root.iter() if _local(d.tag) == "responseDeclaration" and d.get("identifier") == response), None
    )
    values = (
        [v.text.strip() for v in declaration.iterfind("{*}correctResponse/{*}value") if v.text]
        if declaration is not None
        else []
    )
    if declaration is None or len(values) != 1 or (declaration.get("cardinality") or "single") != "single":
        return Problem(where, f"{len(values)} correct responses; an exemplar needs exactly one")
    options = {c.get("identifier"): _plain(c) for c in choice.iterfind("{*}simpleChoice")}
    if values[0] not in options:
        return Problem(where, f"the correct response {values[0]!r} is not one of the choices", "malformed")
    prompt = choice.find("{*}prompt")
    question = "\n".join(t for t in (_plain(body), _plain(prompt) if prompt is not None else "") if t)
    rationale = next(
        (_plain(f) for f in root.iter() if _local(f.tag) == "modalFeedback" and f.get("identifier") not in options), ""
    )
    images = []
    for img in body.iter():
        if _local(img.tag) == "img" and img.get("src"):
            src = posixpath.normpath(posixpath.join(base, img.get("src")))
            blob = None if src.startswith("..") or "://" in img.get("src") else read(src)
            if blob is not None:
                images.append(Image(posixpath.basename(src), blob))
    return ParsedQuestion(
        where,
        question,
        options[values[0]],
        [t for k, t in options.items() if k != values[0]],
        rationale=rationale,
        images=images,
    )


def parse_package(data: bytes) -> list[ParsedQuestion | Problem]:
    try:
        package = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, EOFError):
        raise InputError("the QTI package is not a readable zip file") from None
    members = {i.filename: i for i in package.infolist() if not i.is_dir()}
    if len(members) > MAX_MEMBERS or sum(i.file_size for i in members.values()) > MAX_PACKAGE_BYTES:
        raise InputError(
            f"the QTI package unpacks to more than {MAX_PACKAGE_BYTES // 2**20} MiB or {MAX_MEMBERS} files"
        )

    def read(name: str) -> bytes | None:
        info = members.get(name)
        if info is None or info.file_size > MAX_MEMBER_BYTES:
            return None
        return read_member(package, info, name, MAX_MEMBER_BYTES)

    def parsed(name: str, what: str):
        info = members.get(name)
        if info is None or info.file_size > MAX_MEMBER_BYTES:
            return None
        try:
            stream = package.open(info)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as exc:
            raise InputError(f"{what} cannot be read from the package ({one_line(exc)})") from None
        with stream:  # parsed as it unpacks: a bomb of elements stops at the cap, not after unpacking
            return bounded_parse(stream, what, max_bytes=MAX_MEMBER_BYTES)

    hrefs: list[str] = []
    if "imsmanifest.xml" in members:
        manifest = parsed("imsmanifest.xml", "imsmanifest.xml")
        hrefs = [
            r.get("href")
            for r in manifest.iter()
            if _local(r.tag) == "resource" and (r.get("type") or "").startswith("imsqti_item_xmlv2p1") and r.get("href")
        ]
    else:
        hrefs = sorted(n for n in members if n.lower().endswith(".xml"))
    out: list[ParsedQuestion | Problem] = []
    for n, href in enumerate(hrefs, 1):
        name = posixpath.normpath(href)
        where = f"item {n} ({href})"
        try:
            root = parsed(name, href)
            if root is None:
                out.append(Problem(where, "the manifest names a file the package does not hold", "malformed"))
                continue
            out.append(parse_item(root, where, read, posixpath.dirname(name)))
        except InputError as exc:
            out.append(Problem(where, str(exc), "malformed"))
    return out


def parse(data: bytes) -> list[ParsedQuestion | Problem]:
    if data[:4] == b"PK\x03\x04":
        return parse_package(data)
    return [parse_item(parse_xml(data, "the QTI item file"), "item 1")]
