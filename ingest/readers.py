"""Which reader reads which file type, and how large a file may be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coe.errors import InputError
from coe.imageio import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_TEXT_BYTES, MiB

MAX_DOCUMENT_BYTES = 200 * MiB
IMAGES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")
TEXT = (".md", ".markdown", ".txt", ".html", ".htm")
SUPPORTED = (".pdf", ".docx", ".pptx", *TEXT, *IMAGES)


def check_size(path: Path) -> None:
    """Files over their kind's limit are refused before any parser opens them."""
    suffix = path.suffix.lower()
    limit = (
        DEFAULT_MAX_IMAGE_BYTES
        if suffix in IMAGES
        else DEFAULT_MAX_TEXT_BYTES
        if suffix in TEXT
        else MAX_DOCUMENT_BYTES
    )
    if not path.is_file():
        raise InputError(f"not a regular file: {path}")
    size = path.stat().st_size
    if size > limit:
        raise InputError(f"file too large: {path} ({size} bytes, limit {limit})")


def extractors(
    folder: Path, image_reader: Any = None, *, allow_outside: bool = False, max_pages: int | None = None
) -> dict[str, Any]:
    """``SimpleDirectoryReader``'s ``file_extractor``: suffix → reader, figures stored under ``folder``.
    Each reader's ``scope`` (set per file) is the folder a document's pictures must stay in."""
    from coe.ingest.office import SlidesReader, WordReader
    from coe.ingest.pdf import PdfPagesReader
    from coe.ingest.text import HtmlSectionsReader, MarkdownSectionsReader, PlainImageReader

    markdown = MarkdownSectionsReader(folder, allow_outside=allow_outside)
    html = HtmlSectionsReader(folder, allow_outside=allow_outside)
    image = PlainImageReader(folder, image_reader)
    pdf = PdfPagesReader(folder) if max_pages is None else PdfPagesReader(folder, max_pages=max_pages)
    return {
        ".pdf": pdf,
        ".docx": WordReader(folder),
        ".pptx": SlidesReader(folder),
        ".md": markdown,
        ".markdown": markdown,
        ".txt": markdown,
        ".html": html,
        ".htm": html,
        **{s: image for s in IMAGES},
    }
