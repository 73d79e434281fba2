"""Slides (python-pptx) and Word documents (python-docx) as documents: one per slide, one per heading
section, each picture extracted as a figure with its alt text, caption or nearest text."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document

from coe.errors import InputError
from coe.ingest import figures as figs
from coe.text import one_line

MAX_UNZIPPED_BYTES = 512 * 1024 * 1024
# python-docx and python-pptx build a full lxml tree of each part: a part is checked against these first
MAX_PART_BYTES = 32 * 1024 * 1024
MAX_PART_ELEMENTS = 500_000


def check_zip(file: Path, kind: str) -> None:
    """An Office file is a zip: refuse one that is not, that would unpack beyond the limit (zip bombs), or
    whose XML parts are damaged or too large, too many or too deeply nested elements (counted as they
    unpack, before python-docx or python-pptx builds a tree of them)."""
    from coe.bounded_xml import check_xml_members

    try:
        with zipfile.ZipFile(file) as z:
            total = sum(i.file_size for i in z.infolist())
            if total > MAX_UNZIPPED_BYTES:
                raise InputError(f"{kind} file unpacks to {total} bytes: {file} (limit {MAX_UNZIPPED_BYTES})")
            check_xml_members(z, f"{kind} file {file.name}", max_elements=MAX_PART_ELEMENTS, max_bytes=MAX_PART_BYTES)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"not a readable {kind} file: {file} ({exc})") from None


class _FigureReader(BaseReader):
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.warnings: list[str] = []

    def _save(
        self, blob: bytes, *, fig_id: str, caption: str, label: str, captioned: bool | None = None
    ) -> figs.Figure | None:
        try:
            return figs.save_figure(self.folder, blob, fig_id=fig_id, caption=caption, label=label, captioned=captioned)
        except InputError as exc:
            self.warnings.append(str(exc))
            return None


def _shapes(shapes):
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shapes(shape.shapes)
        else:
            yield shape


def _alt_text(shape) -> str:
    # python-pptx has no alt-text property: read it from the shape's non-visual properties (its first child,
    # p:nvSpPr, p:nvPicPr, ...)
    found = shape.element.xpath("./*[1]/p:cNvPr/@descr")
    return one_line(found[0]) if found else ""


class SlidesReader(_FigureReader):
    """``.pptx`` → one ``Document`` per slide (``slide``, ``title``, ``figures``), speaker notes included."""

    def load_data(self, file: Path, extra_info: dict[str, Any] | None = None) -> list[Document]:
        from pptx import Presentation

        check_zip(file, "PowerPoint")
        try:
            deck = Presentation(str(file))
        except Exception as exc:
            raise InputError(f"not a readable PowerPoint file: {file} ({type(exc).__name__}: {exc})") from exc
        docs = []
        for number, slide in enumerate(deck.slides, start=1):
            texts: list[tuple[float, float, str]] = []  # (left, top, text): reading order and distances
            pictures = []
            for shape in _shapes(slide.shapes):
                top, left = float(shape.top or 0), float(shape.left or 0)
                if getattr(shape, "has_text_frame", False) and shape.text_frame.text.strip():
                    texts.append((left, top + float(shape.height or 0) / 2, shape.text_frame.text.strip()))
                if hasattr(shape, "image"):
                    box = (left, top, left + float(shape.width or 0), top + float(shape.height or 0))
                    pictures.append((shape, box))
            texts.sort(key=lambda t: (t[1], t[0]))
            title = slide.shapes.title.text_frame.text.strip() if slide.shapes.title is not None else ""
            body = [t for _, _, t in texts]
            found = []
            for k, (shape, box) in enumerate(pictures, start=1):
                alt = _alt_text(shape)
                caption = alt or figs.nearest_caption(texts, box)
                try:
                    blob = shape.image.blob
                except Exception:  # a linked (not embedded) picture has no bytes in the file
                    continue
                fig = self._save(
                    blob,
                    fig_id=f"{file.stem}-s{number}-{k}",
                    caption=caption,
                    label=f"{file.name} slide {number} picture {k}",
                    captioned=bool(alt) or None,
                )
                if fig is not None:
                    found.append(fig)
                    if alt and alt not in body:
                        body.append(f"Figure: {alt}")
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame.text.strip():
                body.append(f"Notes: {slide.notes_slide.notes_text_frame.text.strip()}")
            if not body and not found:
                continue
            meta = {**(extra_info or {}), "slide": number, "title": title, "order": number, "figures": figs.dump(found)}
            docs.append(Document(id_=f"{file}#slide={number}", text="\n".join(body), metadata=meta))
        return docs


def _is_heading(paragraph) -> bool:
    name = (paragraph.style.name if paragraph.style is not None else "") or ""
    return name.startswith("Heading") or name == "Title"


def _pictures(paragraph):
    """(relationship id, alt text) of each picture drawn inline in a paragraph (in its runs, hyperlinks'
    included)."""
    from docx.oxml.ns import qn
    from docx.text.run import Run

    runs = [r for part in paragraph.iter_inner_content() for r in ([part] if isinstance(part, Run) else part.runs)]
    for drawing in (d for run in runs for d in run.element.iter(qn("w:drawing"))):
        doc_pr = next(drawing.iter(qn("wp:docPr")), None)
        alt = one_line(doc_pr.get("descr") or "") if doc_pr is not None else ""
        for blip in drawing.iter(qn("a:blip")):
            rid = blip.get(qn("r:embed"))
            if rid:
                yield rid, alt


class WordReader(_FigureReader):
    """``.docx`` → one ``Document`` per heading section (``section``, ``figures``)."""

    def load_data(self, file: Path, extra_info: dict[str, Any] | None = None) -> list[Document]:
        import docx

        check_zip(file, "Word")
        try:
            document = docx.Document(str(file))
        except Exception as exc:
            raise InputError(f"not a readable Word file: {file} ({type(exc).__name__}: {exc})") from exc
        paragraphs = list(document.paragraphs)
        sections: list[dict[str, Any]] = [{"title": "", "lines": [], "figures": []}]
        for i, p in enumerate(paragraphs):
            text = p.text.strip()
            if _is_heading(p) and text:
                sections.append({"title": text, "lines": [], "figures": []})
            if text:
                sections[-1]["lines"].append(text)
            for rid, alt in _pictures(p):
                part = document.part.related_parts.get(rid)
                if part is None:
                    continue
                k = sum(len(s["figures"]) for s in sections) + 1
                fig = self._save(
                    part.blob,
                    fig_id=f"{file.stem}-f{k}",
                    caption=alt or _caption_near(paragraphs, i),
                    label=f"{file.name} picture {k}",
                    captioned=bool(alt) or None,
                )
                if fig is not None:
                    sections[-1]["figures"].append(fig)
        for table in document.tables:  # tables' text belongs to the material too; kept in the last section
            for row in table.rows:
                cells = [c.text.strip() for c in row.cells if c.text.strip()]
                if cells:
                    sections[-1]["lines"].append(" | ".join(dict.fromkeys(cells)))
        docs = []
        for n, s in enumerate(sections):
            if not s["lines"] and not s["figures"]:
                continue
            meta = {**(extra_info or {}), "section": s["title"], "order": n, "figures": figs.dump(s["figures"])}
            docs.append(Document(id_=f"{file}#section={n}", text="\n".join(s["lines"]), metadata=meta))
        return docs


def _caption_near(paragraphs, i: int) -> str:
    """A "Figure N" or Caption-styled paragraph right after (or before) the picture's, else the nearest text."""
    near = [j for j in (i + 1, i - 1, i + 2, i - 2) if 0 <= j < len(paragraphs)]
    for j in near:
        p = paragraphs[j]
        style = (p.style.name if p.style is not None else "") or ""
        if p.text.strip() and (style == "Caption" or figs.is_caption(p.text)):
            return p.text.strip()
    own = paragraphs[i].text.strip()
    if own:
        return own
    return next((paragraphs[j].text.strip() for j in near if paragraphs[j].text.strip()), "")
