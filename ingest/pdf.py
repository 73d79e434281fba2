"""PDF pages as documents with pypdf (BSD-licensed, pure Python): one document per page, its embedded
pictures extracted as figures with the caption nearest to where the page draws them."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document

from coe.errors import InputError
from coe.ingest import figures as figs

MAX_PAGES = 1000  # per document (--max-pages raises it)
_LEADERS = re.compile(r"(?:\s*\.){4,}")


def _box(cm: list[float]) -> tuple[float, float, float, float]:
    """Where an image drawn with matrix ``cm`` lands: the unit square's corners, transformed."""
    a, b, c, d, e, f = (float(v) for v in cm)
    xs = [e, a + e, c + e, a + c + e]
    ys = [f, b + f, d + f, b + d + f]
    return min(xs), min(ys), max(xs), max(ys)


def _page_text(page) -> tuple[str, list[tuple[float, float, str]], dict[str, tuple]]:
    """The page's text, its lines with positions, and where each named image is drawn."""
    lines: list[tuple[float, float, str]] = []
    placed: dict[str, tuple] = {}

    def on_text(text, cm, tm, font, size):
        if text and text.strip():
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            lines.append((x, y, text))

    def on_operator(op, args, cm, tm):
        if op == b"Do" and args:
            placed.setdefault(str(args[0]).lstrip("/"), _box(cm))

    text = page.extract_text(visitor_text=on_text, visitor_operand_before=on_operator) or ""
    text = _LEADERS.sub(" ... ", text)  # tables of contents: dot leaders are not text
    return text, _merge_lines(lines), placed


def _merge_lines(parts: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Text runs on one baseline joined into lines, in the order the page draws them (pypdf reports runs,
    often single words)."""
    rows: dict[int, list[tuple[float, str]]] = {}
    for x, y, t in parts:
        rows.setdefault(round(y), []).append((x, t))
    return [(min(x for x, _ in runs), float(y), " ".join(t.strip() for _, t in runs)) for y, runs in rows.items()]


class PdfPagesReader(BaseReader):
    """``load_data(file, extra_info)`` → one ``Document`` per page (``page``, ``page_label``, ``figures``)."""

    def __init__(self, folder: Path, max_pages: int = MAX_PAGES) -> None:
        self.folder = folder
        self.max_pages = max_pages
        self.warnings: list[str] = []

    def load_data(self, file: Path, extra_info: dict[str, Any] | None = None) -> list[Document]:
        import pypdf

        logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed-but-readable files warn per object
        try:
            reader = pypdf.PdfReader(str(file))
            if reader.is_encrypted and not reader.decrypt(""):
                raise InputError(f"the PDF is encrypted: {file}")
            pages = reader.pages
            count = len(pages)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"not a readable PDF: {file} ({type(exc).__name__}: {exc})") from exc
        if count > self.max_pages:
            raise InputError(
                f"the PDF has {count} pages; split it, or raise the limit with --max-pages (limit {self.max_pages})"
            )
        try:
            labels = list(reader.page_labels)
        except Exception:
            labels = []
        docs = []
        for i, page in enumerate(pages):
            number = i + 1
            text, lines, placed = _page_text(page)
            found = self._figures(page, lines, placed, file, number)
            if not text.strip() and not found:
                continue
            meta = {
                **(extra_info or {}),
                "page": number,
                "page_label": labels[i] if i < len(labels) else str(number),
                "order": number,
                "figures": figs.dump(found),
            }
            docs.append(Document(id_=f"{file}#page={number}", text=text, metadata=meta))
        return docs

    def _figures(self, page, lines, placed, file: Path, number: int) -> list[figs.Figure]:
        out: list[figs.Figure] = []
        try:
            images = list(page.images)
        except Exception as exc:  # a broken image stream loses its figures, not the page's text
            self.warnings.append(f"{file.name} page {number}: pictures not readable ({type(exc).__name__})")
            return out
        for k, image in enumerate(images, start=1):
            stem = Path(image.name).stem
            caption = figs.nearest_caption(lines, placed.get(stem))
            try:
                fig = figs.save_figure(
                    self.folder,
                    image.data,
                    fig_id=f"{file.stem}-p{number}-{k}",
                    caption=caption,
                    label=f"{file.name} page {number} picture {k}",
                )
            except InputError as exc:
                self.warnings.append(str(exc))
                continue
            if fig is not None:
                out.append(fig)
        return out
