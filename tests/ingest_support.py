"""Teaching material for the ingest tests: a PDF (reportlab), slides (python-pptx) and a Word file
(python-docx) with pictures at known places, and a COE_HOME of their own with the real MiniLM model."""

from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

REPORTLAB_GUIDE = Path("/usr/share/doc/python-reportlab-doc/reportlab-userguide.pdf")


def picture(text: str, size=(320, 200), color="lightblue") -> bytes:
    img = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(img)
    draw.rectangle([10, 10, size[0] - 10, size[1] - 10], outline="black", width=3)
    draw.text((30, size[1] // 2), text, fill="black")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@contextmanager
def ingested_science(tmp: Path):
    """The built files (``material_folder``) ingested into the material "science", with COE_HOME and Chroma
    under ``tmp`` for as long as the context lasts."""
    from coe.ingest.pipeline import ingest

    with pytest.MonkeyPatch.context() as mp:
        home = use_home(tmp, mp)
        folder = material_folder(tmp / "docs")
        report = ingest([str(folder)], "science")
        yield {"home": home, "folder": folder, "report": report, "tmp": tmp, "mp": mp}


def use_home(tmp_path: Path, monkeypatch) -> Path:
    """COE_HOME and Chroma under ``tmp_path``; models from the real store (MiniLM must be pulled)."""
    from coe.paths import models_dir

    models = models_dir()
    if not (models / "minilm-l6-v2-int8" / "model.onnx").is_file():
        pytest.fail(f"needs the MiniLM model under {models} (coe models pull minilm-l6-v2-int8)")
    monkeypatch.setenv("COE_MODELS_DIR", str(models))
    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COE_CHROMA_DIR", str(tmp_path / "home" / "chroma"))
    monkeypatch.delenv("COE_CHROMA_URL", raising=False)
    return tmp_path / "home"


def water_cycle_pdf(path: Path) -> Path:
    """Three pages; page 2 draws a picture with "Figure 1: The water cycle" under it."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    c.drawString(72, 780, "Chapter 1. Weather")
    c.drawString(72, 760, "Clouds are made of tiny droplets of water that condense around dust.")
    c.showPage()
    c.drawString(72, 780, "Evaporation turns liquid water from oceans into water vapour.")
    c.drawImage(ImageReader(io.BytesIO(picture("sun, sea, cloud, rain"))), 150, 450, width=300, height=190)
    c.drawString(150, 430, "Figure 1: The water cycle")
    c.drawString(72, 300, "Condensation forms clouds; precipitation returns the water to the ground.")
    c.showPage()
    c.drawString(72, 780, "Chapter 2. Climate zones differ in temperature and precipitation.")
    c.showPage()
    c.save()
    return path


def food_web_slides(path: Path, heron_text: str = "The heron eats trout and frogs in the pond.") -> Path:
    """Two slides; slide 2 has a picture whose alt text is "Food web of a pond"."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    s1 = deck.slides.add_slide(deck.slide_layouts[1])
    s1.shapes.title.text = "Ponds"
    s1.placeholders[1].text = "A pond is a small body of still water with plants and animals."
    s2 = deck.slides.add_slide(deck.slide_layouts[5])
    s2.shapes.title.text = "Pond food web"
    box = s2.shapes.add_textbox(Inches(0.5), Inches(1.5), Inches(9), Inches(1))
    box.text_frame.text = heron_text
    pic = s2.shapes.add_picture(io.BytesIO(picture("heron -> trout -> insects", color="palegreen")),
                                Inches(2), Inches(3), Inches(4), Inches(2.5))
    pic._element.nvPicPr.cNvPr.set("descr", "Food web of a pond")
    s2.notes_slide.notes_text_frame.text = "Ask which animal is the top predator."
    deck.save(str(path))
    return path


def plants_docx(path: Path, cells_text: str = "Plant cells have walls made of cellulose.") -> Path:
    """Two heading sections; the second holds a picture followed by the caption "Figure 2: A chloroplast"."""
    import docx
    from docx.shared import Inches

    d = docx.Document()
    d.add_heading("Plant cells", level=1)
    d.add_paragraph(cells_text)
    d.add_heading("Photosynthesis", level=1)
    d.add_paragraph("Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.")
    d.add_picture(io.BytesIO(picture("chloroplast", color="lightgreen")), width=Inches(3))
    d.add_paragraph("Figure 2: A chloroplast", style="Caption")
    d.save(str(path))
    return path


def material_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    water_cycle_pdf(root / "weather.pdf")
    food_web_slides(root / "pond.pptx")
    plants_docx(root / "plants.docx")
    return root
