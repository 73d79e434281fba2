"""The console's Material tab with Streamlit's AppTest: a built PDF with a figure ingested through the page
(real PDF reader, MiniLM and Chroma), its passages and figure browsed, and an item written from one passage
through the Generate tab's run (scripted model, tests/ui_support.py), with the passage as its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiers import require

require("streamlit", "real_parts")

import coe.ui
from coe.ingest import store
from streamlit.testing.v1 import AppTest

from coe import history
from tests.conftest import FIXTURE
from tests.ingest_support import use_home, water_cycle_pdf

pytestmark = pytest.mark.real_parts  # MiniLM from the model store, a real Chroma

APP = str(Path(coe.ui.__file__).resolve().parent / "app.py")
SINGLE_SHOT = "Single shot (unverified)"
CAPTION = "Figure 1: The water cycle"


@pytest.fixture
def env(tmp_path, monkeypatch):
    home = use_home(tmp_path, monkeypatch)
    monkeypatch.setenv("COE_SERVICES", "tests.ui_support:services")
    monkeypatch.setenv("COE_SCIENCEQA_DIR", str(FIXTURE))
    return {"home": home, "pdf": water_cycle_pdf(tmp_path / "weather.pdf")}


def ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception
    return at


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    return ok(at.run())


def ingested(env) -> AppTest:
    """The page after ingesting weather.pdf into "science" from the command line's function."""
    from coe.ingest.pipeline import ingest

    report = ingest([str(env["pdf"])], "science")
    assert not report.failed, report.failed
    at = new_app()
    at.selectbox(key="mat_name").set_value("science")
    return ok(at.run())


def rows(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**weather.pdf**")]


def thumbnails(at: AppTest) -> list[str]:
    return [img.caption for element in at.get("image") for img in element.proto.imgs]


def generate_from_pick(at: AppTest, answer: str):
    at.selectbox(key="variant").set_value(SINGLE_SHOT)
    at.text_input(key="mat_answer").input(answer)
    ok(at.run())
    ok(at.button(key="mat_generate").click().run())
    run = at.session_state["run"]
    assert run.job is not None and run.job.wait(30), "the run did not finish"
    ok(at.run())
    return run


def test_upload_ingest_browse_pick_and_generate(env):
    at = new_app()
    assert at.selectbox(key="mat_name").options == []
    at.text_input(key="mat_new_name").input("science")
    at.file_uploader(key="mat_files").set_value([("weather.pdf", env["pdf"].read_bytes(), "application/pdf"),
                                                  ("notes.pdf", b"this is not a PDF", "application/pdf")])
    ok(at.run())
    ok(at.button(key="mat_ingest").click().run())
    # the bad file has its own error, in plain words naming the uploaded file; the good one is read
    errors = [e.value for e in at.error]
    assert errors == ["Not a readable PDF: notes.pdf"], errors
    assert next(s.value for s in at.success).startswith("science: 1 new, 1 failed; 3 passages and 1 figures")
    kept = env["home"] / "uploads" / "materials" / "science" / "weather.pdf"
    assert kept.read_bytes() == env["pdf"].read_bytes()
    assert at.selectbox(key="mat_name").value == "science"

    # browse: every page with its place, the figure as a thumbnail with its caption
    assert rows(at) == ["**weather.pdf** · page 1", "**weather.pdf** · page 2", "**weather.pdf** · page 3"]
    assert thumbnails(at) == [CAPTION]
    assert any("3 of 3 passages shown" in c.value for c in at.caption)
    at.text_input(key="mat_filter").input("EVAPORATION")
    ok(at.run())
    assert rows(at) == ["**weather.pdf** · page 2"] and thumbnails(at) == [CAPTION]
    assert any("1 of 3 passages shown" in c.value for c in at.caption)

    # pick it, with its figure, and an answer: the Generate tab's run writes the item
    ok(at.button(key="mat_use_0").click().run())
    assert any(m.value.startswith("**Chosen passage:** weather.pdf, page 2") for m in at.markdown)
    assert at.radio(key="mat_picture").options == [CAPTION, "No picture"]
    run = generate_from_pick(at, "evaporation")
    assert run.status == "review" and run.error is None
    assert run.item()["answer"] == "evaporation" and run.item()["question"]
    assert "Evaporation turns liquid water" in run.state["context"]
    figure = Path(run.state["image_path"])
    assert figure.parent == store.material_dir("science") / "figures" and figure.is_file()
    # the Generate tab shows the same input
    assert at.text_area(key="context").value == run.state["context"]
    assert at.text_input(key="answer").value == "evaporation"
    source = history.load_run(run.run_id)["inputs"]["source"]
    assert source["file"] == "weather.pdf" and source["page"] == 2 and source["material"] == "science"
    assert source["figure"] == "weather-p2-1" and source["figure_caption"] == CAPTION
    assert source["figure_path"] == str(figure)
    assert any(f"Run {run.run_id} from weather.pdf, page 2, figure weather-p2-1 ({CAPTION})" in i.value
               for i in at.info)


def test_find_the_passage_for_an_answer_and_write_it_without_its_picture(env):
    at = ingested(env)
    ok(at.button(key="mat_find").click().run())
    assert [w.value for w in at.warning] == ["Type the answer first: the search looks for the passage that teaches it"]
    at.text_input(key="mat_answer").input("evaporation")
    ok(at.run())
    ok(at.button(key="mat_find").click().run())
    assert any(m.value.startswith("**Chosen passage:** weather.pdf, page 2") for m in at.markdown)
    picture = at.radio(key="mat_picture")
    assert picture.options == [CAPTION, "No picture"]
    picture.set_value(1)
    run = generate_from_pick(at, "evaporation")
    assert run.status == "review" and run.state["image_path"] is None
    assert "Evaporation turns liquid water" in run.state["context"]
    source = history.load_run(run.run_id)["inputs"]["source"]
    assert source["file"] == "weather.pdf" and source["page"] == 2 and "score" in source
    assert not [k for k in source if k.startswith("figure")]


def test_pages_of_passages(env, monkeypatch):
    from coe.ui import material_page

    monkeypatch.setattr(material_page, "PAGE_SIZE", 2)
    at = ingested(env)
    assert rows(at) == ["**weather.pdf** · page 1", "**weather.pdf** · page 2"]
    assert at.number_input(key="mat_page_no").label == "Page (of 2)"
    at.number_input(key="mat_page_no").set_value(2)
    ok(at.run())
    assert rows(at) == ["**weather.pdf** · page 3"] and thumbnails(at) == []
    # a new filter starts again from its first page
    at.text_input(key="mat_filter").input("water")
    ok(at.run())
    assert at.number_input(key="mat_page_no").value == 1 and rows(at) == ["**weather.pdf** · page 1",
                                                                          "**weather.pdf** · page 2"]


@pytest.mark.parametrize("name, files, message", [
    ("Science Notes", [("a.md", b"# A\n\nText.", "text/markdown")], "A material name is 1-40 lowercase letters"),
    ("science", [], "Choose one or more files to add"),
])
def test_bad_ingest_requests_get_one_clear_line(env, name, files, message):
    at = new_app()
    at.text_input(key="mat_new_name").input(name)
    if files:
        at.file_uploader(key="mat_files").set_value(files)
    ok(at.run())
    ok(at.button(key="mat_ingest").click().run())
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith(message), errors
    assert store.list_materials() == [] and not (env["home"] / "uploads").exists()
