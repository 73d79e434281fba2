"""Material-grounded items: the passage and figure that teach an answer become the graph's context and
picture, the item records where they came from; `coe suggest` proposes targets as a batch manifest;
`coe material list|show|remove`."""

from __future__ import annotations

import csv
import json

import pytest

from tests.ingest_support import ingested_science

pytestmark = pytest.mark.real_parts  # MiniLM from the model store, a real Chroma


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    with ingested_science(tmp_path_factory.mktemp("material")) as ingested:
        assert not ingested["report"].failed
        yield ingested


def test_the_passage_and_figure_that_teach_the_answer(material):
    from coe.ingest import store
    from coe.ingest.retrieve import material_input

    found = material_input("science", "photosynthesis")
    src = found["source"]
    assert (src["file"], src["section"], src["figure"]) == ("plants.docx", "Photosynthesis", "plants-f1")
    assert src["figure_caption"] == "Figure 2: A chloroplast"
    assert found["context"].startswith("Photosynthesis") and "carbon dioxide" in found["context"]
    assert found["image_path"] == src["figure_path"]
    assert found["image_path"].startswith(str(store.material_dir("science") / "figures"))
    found = material_input("science", "water cycle")
    assert (found["source"]["file"], found["source"]["page"], found["source"]["figure"]) == (
        "weather.pdf", 2, "weather-p2-1")


def test_an_answer_the_material_does_not_teach_is_one_clear_error(material):
    from coe.errors import InputError
    from coe.ingest.retrieve import material_input

    with pytest.raises(InputError, match="has no passage about 'quantum chromodynamics'"):
        material_input("science", "quantum chromodynamics")
    with pytest.raises(InputError, match="no material named 'nothing'"):
        material_input("nothing", "heron")


def test_generate_with_material_records_the_source(material, capsys):
    from coe.cli import main
    from coe.graphs import services as services_module
    from tests.batch_support import build_bank, scripted_services

    bank = material["tmp"] / "bank"
    build_bank(bank)
    material["mp"].setattr(services_module, "default_services", lambda *a, **k: scripted_services(str(bank)))
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--material", "science", "--answer", "heron", "--n-distractors", "2", "--json"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    item = json.loads(out)
    assert item["answer"] == "heron" and len(item["distractors"]) == 2
    src = item["source"]
    assert (src["material"], src["file"], src["slide"], src["figure"]) == ("science", "pond.pptx", 2, "pond-s2-1")
    assert src["figure_caption"] == "Food web of a pond"
    assert item["image"] == src["figure_path"]
    # the passage reached the graph as its context: the question prompt quotes the slide's text
    steps = [json.dumps(s) for s in item["trace"] if s["node"] == "question"]
    assert steps and any("The heron eats trout and frogs in the pond." in s for s in steps)


def test_generate_refuses_material_with_a_context(material, capsys):
    from coe.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--material", "science", "--answer", "heron", "--context", "a pond"])
    assert exit_.value.code == 2
    assert "drop --image and --context" in capsys.readouterr().err


def test_suggest_writes_a_manifest_batch_run_accepts(material, capsys):
    from coe.batch.manifest import read_manifest
    from coe.cli import main

    out = material["tmp"] / "targets.csv"
    with pytest.raises(SystemExit) as exit_:
        main(["suggest", "--material", "science", "--n", "8", "--out", str(out)])
    assert exit_.value.code == 0
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_answer = {r["answer"]: r for r in rows}
    assert len(rows) == 8
    # figures' captions first: their subject, with their passage and picture
    assert sorted(r["answer"] for r in rows[:3]) == ["Food web", "chloroplast", "water cycle"]
    assert "Evaporation turns liquid water" in by_answer["water cycle"]["context"]
    assert by_answer["water cycle"]["tags"] == "science;figure;weather.pdf;page 2;weather-p2-1"
    assert by_answer["Food web"]["image"].endswith(".png")
    # recurring terms after them, each with a passage that names it
    terms = [r for r in rows if "term" in r["tags"].split(";")]
    assert terms and all(r["answer"].lower() in r["context"].lower() for r in terms)
    good, bad = read_manifest(out)
    assert not bad and [r.answer for r in good] == [r["answer"] for r in rows]


def test_material_list_show_remove(material, capsys):
    from coe.cli import main
    from coe.ingest import store

    with pytest.raises(SystemExit):
        main(["material", "list"])
    listed = capsys.readouterr().out.strip().splitlines()
    assert listed[0].startswith("science\t3 files\t")
    assert listed[0].endswith("\t3 figures")
    with pytest.raises(SystemExit):
        main(["material", "show", "science", "--json"])
    shown = json.loads(capsys.readouterr().out)
    page2 = next(p for p in shown if p["file"] == "weather.pdf" and p["page"] == 2)
    assert [f["caption"] for f in page2["figures"]] == ["Figure 1: The water cycle"]
    folder = store.material_dir("science")
    with pytest.raises(SystemExit) as exit_:
        main(["material", "remove", "science"])
    assert exit_.value.code == 0 and not folder.exists()
    assert "science" not in store.list_materials()
    with pytest.raises(SystemExit) as exit_:
        main(["material", "show", "science"])
    assert exit_.value.code == 2 and "no material named 'science'" in capsys.readouterr().err
