"""Markdown, HTML and plain images as documents: one per heading section (Markdown, HTML), one per image.
Pictures that a page embeds from a local file become figures, captioned by their alt text or figcaption."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document

from coe.errors import InputError
from coe.imageio import DEFAULT_MAX_IMAGE_BYTES, load_image, read_text_file
from coe.ingest import figures as figs
from coe.text import one_line

_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADINGS = ("h1", "h2", "h3")


class _SectionReader(BaseReader):
    def __init__(self, folder: Path, *, allow_outside: bool = False) -> None:
        self.folder = folder
        self.allow_outside = allow_outside
        self.scope: Path | None = None  # set per file: the folder its pictures must resolve inside
        self.warnings: list[str] = []

    def _local_figure(self, file: Path, src: str, caption: str, fig_id: str) -> figs.Figure | None:
        if re.match(r"^[a-z][a-z0-9+.-]*:", src, re.I):  # remote or data: URLs are not fetched
            return None
        path = (file.parent / src).resolve()
        scope = (self.scope or file.parent).resolve()
        if not self.allow_outside and not path.is_relative_to(scope):
            # decided before the path is touched, and worded the same whether or not such a file exists
            self.warnings.append(
                f"picture outside {scope} left out: {src} in {file.name} (--allow-outside-files reads it)"
            )
            return None
        try:
            if not path.is_file() or path.stat().st_size > DEFAULT_MAX_IMAGE_BYTES:
                raise InputError(f"picture not found or too large: {src} in {file.name}")
            return figs.save_figure(
                self.folder,
                path.read_bytes(),
                fig_id=fig_id,
                caption=caption,
                label=f"{file.name} picture {src}",
                captioned=bool(caption) or None,
            )
        except (InputError, OSError) as exc:
            self.warnings.append(str(exc))
            return None

    @staticmethod
    def _documents(file: Path, sections: list[dict[str, Any]], extra_info: dict | None) -> list[Document]:
        docs = []
        for n, s in enumerate(sections):
            text = "\n".join(s["lines"]).strip()
            if not text and not s["figures"]:
                continue
            meta = {**(extra_info or {}), "section": s["title"], "order": n, "figures": figs.dump(s["figures"])}
            docs.append(Document(id_=f"{file}#section={n}", text=text, metadata=meta))
        return docs


class MarkdownSectionsReader(_SectionReader):
    def load_data(self, file: Path, extra_info: dict[str, Any] | None = None) -> list[Document]:
        text = read_text_file(file)
        sections: list[dict[str, Any]] = [{"title": "", "lines": [], "figures": []}]
        fence = False
        for line in text.splitlines():
            if line.lstrip().startswith(("```", "~~~")):
                fence = not fence
            heading = None if fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if heading:
                sections.append({"title": heading.group(1), "lines": [], "figures": []})
            for alt, src in _MD_IMAGE.findall(line):
                k = sum(len(s["figures"]) for s in sections) + 1
                caption = alt or one_line(_MD_IMAGE.sub("", line)) or sections[-1]["title"]
                fig = self._local_figure(file, src, caption, f"{file.stem}-f{k}")
                if fig is not None:
                    sections[-1]["figures"].append(fig)
            line = _MD_IMAGE.sub(lambda m: f"Figure: {m.group(1)}" if m.group(1) else "", line)
            sections[-1]["lines"].append(line)
        return self._documents(file, sections, extra_info)


class HtmlSectionsReader(_SectionReader):
    def load_data(self, file: Path, extra_info: dict[str, Any] | None = None) -> list[Document]:
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(read_text_file(file), "html.parser")
        for junk in soup(["script", "style", "noscript", "template"]):
            junk.decompose()
        sections: list[dict[str, Any]] = [{"title": "", "lines": [], "figures": []}]
        body = soup.body or soup
        for el in body.find_all([*_HEADINGS, "p", "li", "pre", "td", "th", "figcaption", "img", "dt", "dd"]):
            if el.name in _HEADINGS:
                sections.append({"title": one_line(el.get_text(" ")), "lines": [], "figures": []})
            elif el.name == "img":
                figure = el.find_parent("figure")
                cap = figure.find("figcaption") if figure is not None else None
                caption = one_line(el.get("alt") or "") or (one_line(cap.get_text(" ")) if cap else "")
                k = sum(len(s["figures"]) for s in sections) + 1
                fig = self._local_figure(file, str(el.get("src") or ""), caption, f"{file.stem}-f{k}")
                if fig is not None:
                    sections[-1]["figures"].append(fig)
                    if caption and cap is None:
                        sections[-1]["lines"].append(f"Figure: {caption}")
                continue
            if el.find_parent(["p", "li", "td", "th", "pre", "dd"]) is not None:
                continue  # nested block: its text is in its parent's
            text = one_line(el.get_text(" "))
            if text:
                sections[-1]["lines"].append(text)
        return self._documents(file, sections, extra_info)


class PlainImageReader(_SectionReader):
    """A picture file is a figure of its own; its text is its name and the text OCR reads in it."""

    def __init__(self, folder: Path, image_reader: Any = None) -> None:
        super().__init__(folder)
        self.image_reader = image_reader

    def load_data(self, file: Path, extra_info: dict[str, Any] | None = None) -> list[Document]:
        image = load_image(file)
        name = one_line(re.sub(r"[_\-.]+", " ", file.stem))
        lines = [f"Figure: {name}"]
        if self.image_reader is not None:
            described = self.image_reader.describe(image, source_path=file)
            if described.ocr_text.strip():
                lines.append(f"Text in the image: {described.ocr_text.strip()}")
        fig = figs.save_figure(
            self.folder, file.read_bytes(), fig_id=f"{file.stem}-image", caption=name, label=file.name, captioned=True
        )
        sections = [{"title": name, "lines": lines, "figures": [fig] if fig else []}]
        docs = self._documents(file, sections, extra_info)
        for d in docs:
            d.id_ = f"{file}#image"
        return docs
