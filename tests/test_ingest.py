"""`coe ingest`: real files (a Debian-shipped PDF, and PDF/PPTX/DOCX files built with figures at known
places) into a material; pages, slides, sections and figure-to-passage links; re-ingest skips what is
unchanged; a bad file gets its own error."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.ingest_support import (REPORTLAB_GUIDE, food_web_slides, ingested_science, plants_docx,
                                  use_home)

pytestmark = pytest.mark.real_parts  # MiniLM from the model store, a real Chroma


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    """The three built files ingested once into the material "science"."""
    with ingested_science(tmp_path_factory.mktemp("ingest")) as ingested:
        yield ingested


def passages(name="science"):
    from coe.ingest import store
    return store.passages(name)


def by_file(rows, name):
    return [r for r in rows if r["metadata"]["file_name"] == name]


def test_every_file_is_read_with_its_places(material):
    report = material["report"]
    assert sorted((f.path.rsplit("/", 1)[1], f.status) for f in report.files) == [
        ("plants.docx", "new"), ("pond.pptx", "new"), ("weather.pdf", "new")]
    rows = passages()
    pdf = {r["metadata"]["page"]: r["text"] for r in by_file(rows, "weather.pdf")}
    assert sorted(pdf) == [1, 2, 3]
    assert "Evaporation turns liquid water" in pdf[2] and "Figure 1: The water cycle" in pdf[2]
    assert "Climate zones" in pdf[3]
    slides = {r["metadata"]["slide"]: r for r in by_file(rows, "pond.pptx")}
    assert "heron eats trout" in slides[2]["text"]
    assert "Notes: Ask which animal is the top predator." in slides[2]["text"]
    assert slides[2]["metadata"]["title"] == "Pond food web"
    sections = {r["metadata"]["section"]: r["text"] for r in by_file(rows, "plants.docx")}
    assert "cellulose" in sections["Plant cells"] and "cellulose" not in sections["Photosynthesis"]
    assert "carbon dioxide" in sections["Photosynthesis"]


def test_figures_are_files_linked_to_their_passage(material):
    from coe.ingest import store

    folder = store.material_dir("science")
    linked = {}
    for r in passages():
        for fig in json.loads(r["metadata"]["figures"]):
            linked[fig["id"]] = (r, fig)
    assert sorted(linked) == ["plants-f1", "pond-s2-1", "weather-p2-1"]
    page2, fig = linked["weather-p2-1"]
    assert page2["metadata"]["page"] == 2 and fig["caption"] == "Figure 1: The water cycle"
    assert fig["passage_id"] == page2["id"] and fig["captioned"] is True
    with Image.open(folder / fig["path"]) as img:
        assert img.size == (320, 200)
    slide, fig = linked["pond-s2-1"]
    assert slide["metadata"]["slide"] == 2 and fig["caption"] == "Food web of a pond"
    section, fig = linked["plants-f1"]
    assert section["metadata"]["section"] == "Photosynthesis" and fig["caption"] == "Figure 2: A chloroplast"
    assert all((folder / f["path"]).is_file() for _, f in linked.values())


def test_reingest_unchanged_redoes_nothing(material):
    from coe.ingest.pipeline import ingest

    before = {r["id"] for r in passages()}
    again = ingest([str(material["folder"])], "science")
    assert [f.status for f in again.files] == ["unchanged"] * 3
    assert sum(f.passages for f in again.files) == 0
    # read again past the file check: the pipeline's docstore finds every page unchanged and embeds nothing
    reread = ingest([str(material["folder"])], "science", reread=True)
    assert sum(f.documents for f in reread.files) == 3 + 2 + 2
    assert sum(f.passages for f in reread.files) == 0
    assert {r["id"] for r in passages()} == before


def test_changed_file_redoes_only_its_changed_part(material):
    from coe.ingest.pipeline import ingest

    before = {r["id"]: r for r in passages()}
    docx = material["folder"] / "plants.docx"
    plants_docx(docx, cells_text="Plant cells have walls made of cellulose and a large vacuole.")
    report = ingest([str(material["folder"])], "science")
    status = {f.path.rsplit("/", 1)[1]: f for f in report.files}
    assert status["plants.docx"].status == "changed" and status["pond.pptx"].status == "unchanged"
    assert status["plants.docx"].documents == 2 and status["plants.docx"].passages == 1
    after = {r["id"]: r for r in passages()}
    gone, new = set(before) - set(after), set(after) - set(before)
    assert [before[i]["metadata"]["section"] for i in gone] == ["Plant cells"]
    assert ["vacuole" in after[i]["text"] for i in new] == [True]


def test_bad_file_gets_its_own_error_and_the_rest_go_on(tmp_path, monkeypatch):
    from coe.ingest.pipeline import ingest

    use_home(tmp_path, monkeypatch)
    docs = tmp_path / "mixed"
    docs.mkdir()
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not a PDF body")
    (docs / "broken.pptx").write_bytes(b"PK\x03\x04 not a zip")
    food_web_slides(docs / "pond.pptx")
    report = ingest([str(docs), str(tmp_path / "missing.docx")], "mixed")
    errors = {f.path.rsplit("/", 1)[1]: f.error for f in report.failed}
    assert sorted(errors) == ["broken.pdf", "broken.pptx", "missing.docx"]
    assert errors["broken.pdf"].startswith("not a readable PDF") and "\n" not in errors["broken.pdf"]
    assert errors["broken.pptx"].startswith("not a readable PowerPoint file")
    assert errors["missing.docx"].startswith("not found")
    assert {r["metadata"]["slide"] for r in passages("mixed")} == {1, 2}


def test_cli_exits_nonzero_after_ingesting_the_good_files(tmp_path, monkeypatch, capsys):
    from coe.cli import main

    use_home(tmp_path, monkeypatch)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text("# Magnets\nA magnet attracts iron.\n\n# Poles\nOpposite poles attract.\n")
    (docs / "bad.png").write_bytes(b"not a picture")
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", str(docs), "--material", "magnets"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert [line for line in err.splitlines() if line.startswith("coe: error:")] == [
        f"coe: error: not a readable image: {docs / 'bad.png'} (UnidentifiedImageError: cannot identify image "
        f"file '{docs / 'bad.png'}')"]
    assert {r["metadata"]["section"] for r in passages("magnets")} == {"Magnets", "Poles"}


def test_a_real_debian_pdf_keeps_its_pages_and_figures(tmp_path, monkeypatch):
    """Pages 89-100 of the ReportLab user guide (python-reportlab-doc): real text, two real pictures."""
    import pypdf

    from coe.ingest.pipeline import ingest

    if not REPORTLAB_GUIDE.is_file():
        pytest.fail(f"{REPORTLAB_GUIDE} is missing: apt-get install python-reportlab-doc (make system-deps)")
    use_home(tmp_path, monkeypatch)
    writer = pypdf.PdfWriter()
    for page in pypdf.PdfReader(REPORTLAB_GUIDE).pages[88:100]:
        writer.add_page(page)
    part = tmp_path / "guide-89-100.pdf"
    with part.open("wb") as fh:
        writer.write(fh)
    report = ingest([str(part)], "guide")
    assert report.files[0].status == "new" and report.files[0].documents == 12
    rows = passages("guide")
    figures = {f["id"]: (r, f) for r in rows for f in json.loads(r["metadata"]["figures"])}
    # page 93 of the guide (5 of the part): the JPEG that `Image("lj8100.jpg")` "will display as"
    row, fig = figures["guide-89-100-p5-1"]
    assert row["metadata"]["page"] == 5 and "will display as" in row["text"]
    assert fig["caption"] == "will display as" and fig["path"].endswith(".jpg")
    assert 'Image("lj8100.jpg")' in row["text"]
    # page 100 (12 of the part): the rotated logo that RotatedImage "produces"
    row, fig = figures["guide-89-100-p12-1"]
    assert row["metadata"]["page"] == 12 and "RotatedImage" in row["text"] and fig["caption"] == "produces"
