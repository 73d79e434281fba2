"""XML and zip members read within bounds: no entities or external references (defusedxml), at most
``max_elements`` elements nested at most ``max_depth`` deep, and at most ``max_bytes`` unpacked bytes per zip
member, counted as they are unpacked (a member's declared size is not trusted). Each limit fails early with
one line, so a small hostile file never grows into gigabytes of tree or recursion."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterable
from typing import IO

from coe.errors import InputError
from coe.text import one_line

MAX_ELEMENTS = 1_000_000
MAX_DEPTH = 256
MAX_MEMBER_BYTES = 64 * 2**20
CHUNK = 2**20


class _Bounded:
    """A parser target that counts elements and depth, and builds the tree only when asked to."""

    def __init__(self, what: str, max_elements: int, max_depth: int, build: bool) -> None:
        import xml.etree.ElementTree as ET

        self.what, self.max_elements, self.max_depth = what, max_elements, max_depth
        self.builder = ET.TreeBuilder() if build else None
        self.elements = self.depth = 0

    def start(self, tag, attrib):
        self.elements += 1
        self.depth += 1
        if self.elements > self.max_elements:
            raise InputError(f"{self.what} has more than {self.max_elements} XML elements")
        if self.depth > self.max_depth:
            raise InputError(f"{self.what} nests XML elements more than {self.max_depth} deep")
        if self.builder is not None:
            self.builder.start(tag, attrib)

    def end(self, tag):
        self.depth -= 1
        if self.builder is not None:
            self.builder.end(tag)

    def data(self, text):
        if self.builder is not None:
            self.builder.data(text)

    def close(self):
        return self.builder.close() if self.builder is not None else None


def _chunks(source: bytes | IO[bytes], what: str, max_bytes: int) -> Iterable[bytes]:
    if isinstance(source, (bytes, bytearray)):
        if len(source) > max_bytes:
            raise InputError(f"{what} is larger than {max_bytes // 2**20} MiB")
        yield bytes(source)
        return
    total = 0
    while chunk := _read(source, CHUNK, what):
        total += len(chunk)
        if total > max_bytes:
            raise InputError(f"{what} unpacks to more than {max_bytes // 2**20} MiB")
        yield chunk


def _read(stream: IO[bytes], size: int, what: str) -> bytes:
    try:
        return stream.read(size)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise InputError(f"{what} is damaged in its zip file ({one_line(exc) or type(exc).__name__})") from None


def parse_xml(
    source: bytes | IO[bytes],
    what: str,
    *,
    build: bool = True,
    max_elements: int = MAX_ELEMENTS,
    max_depth: int = MAX_DEPTH,
    max_bytes: int = MAX_MEMBER_BYTES,
):
    """The root element of ``source`` (bytes or a binary stream, e.g. a zip member), or ``None`` with
    ``build=False`` (a check only). Raises ``InputError`` naming ``what`` for any limit or syntax error."""
    import xml.etree.ElementTree as ET

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import DefusedXMLParser

    target = _Bounded(what, max_elements, max_depth, build)
    parser = DefusedXMLParser(target=target, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    try:
        for chunk in _chunks(source, what, max_bytes):
            parser.feed(chunk)
        root = parser.close()
    except DefusedXmlException as exc:
        raise InputError(
            f"{what} declares XML entities or external references ({type(exc).__name__}), "
            "which coe does not read; remove the DOCTYPE and import it again"
        ) from None
    except ET.ParseError as exc:
        line, column = exc.position
        raise InputError(f"{what} is not well-formed XML (line {line}, column {column})") from None
    if build and root is None:
        raise InputError(f"{what} holds no XML element")
    return root


def read_member(package: zipfile.ZipFile, info: zipfile.ZipInfo, what: str, max_bytes: int = MAX_MEMBER_BYTES) -> bytes:
    """A zip member's bytes, unpacked at most ``max_bytes`` and checked (CRC, deflate data)."""
    try:
        stream = package.open(info)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as exc:
        raise InputError(f"{what} cannot be read from its zip file ({one_line(exc)})") from None
    with stream:
        return b"".join(_chunks(stream, what, max_bytes))


def check_xml_members(
    package: zipfile.ZipFile, label: str, *, max_elements: int = MAX_ELEMENTS, max_bytes: int = MAX_MEMBER_BYTES
) -> None:
    """Every XML part of an Office file parsed once within bounds, without building a tree, before a
    library that trusts its input (python-docx, python-pptx) reads it."""
    for info in package.infolist():
        if info.is_dir() or not info.filename.lower().endswith((".xml", ".rels")):
            continue
        what = f"{label} part {info.filename}"
        try:
            stream = package.open(info)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as exc:
            raise InputError(f"{what} cannot be read ({one_line(exc)})") from None
        with stream:
            parse_xml(stream, what, build=False, max_elements=max_elements, max_bytes=max_bytes)
