"""Items exported for learning platforms: Moodle XML, GIFT, QTI 2.1, Aiken, CSV and JSONL.

``export(items, fmt, out)`` writes one file (atomically); each format's module also has a ``render``
that returns the file's content, for one-item downloads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from coe.errors import InputError
from coe.exports.item import ExportItem, check_unique_ids

FORMATS = ("moodle-xml", "gift", "qti21", "aiken", "csv", "jsonl")
SUFFIXES = {
    "moodle-xml": ".xml",
    "gift": ".gift.txt",
    "qti21": ".zip",
    "aiken": ".aiken.txt",
    "csv": ".csv",
    "jsonl": ".jsonl",
}


def _checked(items: list[ExportItem], fmt: str) -> list[ExportItem]:
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if not items:
        raise InputError("nothing to export: no items")
    check_unique_ids(items)
    return list(items)


def export(items: list[ExportItem], fmt: str, out: str | Path) -> Path:
    """Write ``items`` as ``fmt`` (one of ``FORMATS``) to ``out``; returns the path written."""
    from coe.exports import aiken, gift, moodle_xml, qti21, tabular

    writers = {
        "moodle-xml": moodle_xml.write,
        "gift": gift.write,
        "qti21": qti21.write,
        "aiken": aiken.write,
        "csv": tabular.write_csv,
        "jsonl": tabular.write_jsonl,
    }
    items = _checked(items, fmt)
    return writers[fmt](items, Path(out))


def render(items: list[ExportItem], fmt: str) -> bytes:
    """The file ``export`` would write, as bytes (for downloads)."""
    from coe.exports import aiken, gift, moodle_xml, qti21, tabular

    renderers: dict[str, Callable[[list[ExportItem]], str | bytes]] = {
        "moodle-xml": moodle_xml.render,
        "gift": gift.render,
        "qti21": qti21.render,
        "aiken": aiken.render,
        "csv": lambda i: tabular.render_csv(i).encode(tabular.CSV_ENCODING),
        "jsonl": tabular.render_jsonl,
    }
    items = _checked(items, fmt)
    out = renderers[fmt](items)
    return out if isinstance(out, bytes) else out.encode("utf-8")


__all__ = ["FORMATS", "SUFFIXES", "ExportItem", "export", "render"]
