"""Imported banks as exemplars: banks written by coe's export and by independent tools guide an item through
the graph (scripted student, real Chroma), several banks merge by score, duplicates are skipped across
imports, and the command line imports, lists and removes a bank with the real default embedder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from coe.question_banks import import_bank, list_banks, parse_banks, remove_bank, require_banks
from coe.exports import ExportItem, export
from coe.graphs import Services, graph
from coe.plugins.store.chroma import ChromaStore
from coe.retrieval.retriever import ExemplarRetriever, RetrievalQuery, RetrievalSettings

from coe.errors import ConfigError, InputError
from tests.batch_support import SETTINGS, build_bank, student
from tests.conftest import HashEmbedder
from tests.test_exports import IMAGE
from tests.test_graph import StubReader

try:
    from gift_wrapper.question import MultipleChoice as GiftWrapperMC
    from moodle_questions import MultipleChoiceQuestion, Quiz
except ImportError as exc:
    pytest.fail(f"an independent bank writer is missing ({exc}): pip install gift-wrapper moodle-questions",
                pytrace=False)

# a teacher's bank about meadow food chains, with text a student could write: quotes, <, &, GIFT specials
BANK = [("Which animal in the meadow food chain eats the grass & clover?", "rabbit", ["hawk", "fox"],
         'The rabbit is a "herbivore": grass -> rabbit.'),
        ("In this meadow food chain, which organism {hunts} the rabbit: fox or trout?", "fox",
         ["grass", "trout"], "Foxes eat rabbits; 1 < 2."),
        ("Which organism makes its own food in a meadow? (é, 中文)", "grass", ["rabbit", "owl"], "Plants photosynthesise.")]
QUERY = {"answer": "rabbit", "context": "Row 1: a food chain in a meadow.", "n_distractors": 2}


def write_bank(tmp_path, writer: str):
    if writer == "gift-wrapper":
        path = tmp_path / "wrapper.gift"
        path.write_text("\n\n".join(GiftWrapperMC(f"q{n}", q.replace("{", "\\{").replace("}", "\\}")
                                                  .replace("&", "&amp;").replace("<", "&lt;"),
                                                  {"perfect": a, "wrong": w},
                                                  feedback=r.replace("<", "&lt;").replace(">", "&gt;")).gift
                                    for n, (q, a, w, r) in enumerate(BANK)), "utf-8")
        return path
    if writer == "moodle-questions":
        quiz = Quiz()
        for n, (q, a, w, r) in enumerate(BANK):
            mc = MultipleChoiceQuestion(name=f"q{n}", question_text=q.replace("&", "&amp;").replace("<", "&lt;"),
                                        default_mark=1, general_feedback=r.replace("<", "&lt;").replace(">", "&gt;"))
            for fraction, text in ((100, a), *((0, x) for x in w)):
                mc.add_answer(fraction, text, "")
            quiz.add_question(mc)
        quiz.save(str(tmp_path / "mq.xml"))
        return tmp_path / "mq.xml"
    fmt = writer.removeprefix("coe-")
    items = [ExportItem.build(id=f"q{n}", question=q, answer=a, distractors=w, rationale=r,
                              image=str(IMAGE) if n == 0 else None) for n, (q, a, w, r) in enumerate(BANK)]
    return export(items, fmt, tmp_path / ("bank.xml" if fmt == "moodle-xml" else "bank.gift"))


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))
    store = ChromaStore(tmp_path / "chroma")
    build_bank(tmp_path / "chroma")   # ScienceQA's fixture as the default bank
    return store


@pytest.mark.parametrize("writer", ["coe-gift", "coe-moodle-xml", "gift-wrapper", "moodle-questions"])
def test_an_imported_bank_guides_the_item_and_the_trace_names_it(tmp_path, home, writer):
    report = import_bank(write_bank(tmp_path, writer), "teacher", embedder=HashEmbedder(), store=home)
    assert (report.added, report.problems, report.duplicates) == (3, [], [])
    llm = student()
    retriever = ExemplarRetriever(HashEmbedder(), home, banks=list(parse_banks("default,teacher")))
    out = graph.invoke(dict(QUERY), config={"configurable": {**SETTINGS}},
                       context=Services(llm=llm, retriever=retriever, image_reader=StubReader()))
    exemplars = out["exemplars"]
    assert {e["bank"] for e in exemplars} == {"default", "teacher"}
    ours = [e for e in exemplars if e["bank"] == "teacher"]
    assert {(e["question"], e["answer"]) for e in ours} <= {(q, a) for q, a, _, _ in BANK}
    assert ours[0]["question"] == BANK[0][0] and ours[0]["rationale"] == BANK[0][3]
    (step,) = [t for t in out["trace"] if t["node"] == "retrieve"]
    assert step["banks"] == ["default", "teacher"]
    assert step["exemplar_banks"] == [{"id": e["id"], "bank": e["bank"]} for e in exemplars]
    shown = [e for e in exemplars[:4] if e["bank"] == "teacher"]
    prompt = next(r for r in llm.requests if "write the question" in r.messages[-1].content
                  or "generate a question" in r.messages[-1].content).messages[-1].content
    assert shown and all(e["question"] in prompt for e in shown)
    # Moodle XML carries coe's picture; the file is kept under the bank's folder, and GIFT has none to keep
    pictured = [e for e in exemplars if e["bank"] == "teacher" and e["has_image"]]
    assert [e["question"] for e in pictured] == ([BANK[0][0]] if writer == "coe-moodle-xml" else [])
    folder = tmp_path / "home" / "banks" / "teacher" / "images"
    assert all(e["image"].startswith(str(folder)) and Path(e["image"]).read_bytes() == IMAGE.read_bytes()
               for e in pictured)
    assert all(not e["image"] for e in ours if e not in pictured)


def test_several_banks_merge_by_score(tmp_path, home):
    import_bank(write_bank(tmp_path, "coe-gift"), "teacher", embedder=HashEmbedder(), store=home)
    flat = RetrievalSettings(diversity=0.0)
    q = RetrievalQuery(answer="rabbit", context="a food chain in a meadow with grass")
    merged, info = ExemplarRetriever(HashEmbedder(), home, banks=["default", "teacher"], settings=flat).retrieve(q, k=6)
    each = [e for b in ("default", "teacher")
            for e in ExemplarRetriever(HashEmbedder(), home, bank=b, settings=flat).retrieve(q, k=6)[0]]
    want = sorted(each, key=lambda e: (-e.score, e.bank, e.id))[:6]
    assert [(e.bank, e.id, e.score) for e in merged] == [(e.bank, e.id, e.score) for e in want]
    assert {e.bank for e in merged} == {"default", "teacher"}
    assert info["candidates"] > len(merged)
    same = ExemplarRetriever(HashEmbedder(), home, banks=["default", "teacher"]).same_questions(BANK[1][0])
    assert same[0].bank == "teacher" and same[0].question == BANK[1][0]


def test_duplicates_are_skipped_within_and_across_imports(tmp_path, home):
    first = import_bank(write_bank(tmp_path, "coe-gift"), "teacher", embedder=HashEmbedder(), store=home)
    again = import_bank(write_bank(tmp_path, "moodle-questions"), "teacher", embedder=HashEmbedder(), store=home)
    assert (first.added, again.added, again.duplicates) == (3, 0, ["question 1", "question 2", "question 3"])
    more = tmp_path / "more.jsonl"
    more.write_text("".join(json.dumps(r) + "\n" for r in [
        {"question": BANK[0][0].upper(), "answer": "Rabbit.", "distractors": ["fox", "HAWK"]},   # same, reworded case
        {"question": "Which bird hunts mice at night?", "answer": "owl", "distractors": ["robin", "rabbit"]},
        {"question": "Which bird hunts mice at night?", "answer": "owl", "distractors": ["rabbit", "robin"]}]), "utf-8")
    grown = import_bank(more, "teacher", embedder=HashEmbedder(), store=home)
    assert (grown.added, grown.duplicates, grown.exemplars) == (1, ["line 1", "line 3"], 4)
    assert home.count("teacher-answer") == 4
    (info,) = [b for b in list_banks(home) if b.name == "teacher"]
    assert info.exemplars == 4 and [s["file"] for s in info.sources] == ["bank.gift", "mq.xml", "more.jsonl"]
    assert [s["added"] for s in info.sources] == [3, 0, 1] and info.embedder == HashEmbedder.model_id
    assert [b.name for b in list_banks(home)] == ["default", "teacher"]


def test_remove_and_bad_names(tmp_path, home, monkeypatch):
    import_bank(write_bank(tmp_path, "coe-gift"), "teacher", embedder=HashEmbedder(), store=home)
    require_banks(home, ["default", "teacher"], HashEmbedder.model_id)
    with pytest.raises(ConfigError, match="embedded with hash-bow-64, not other"):
        require_banks(home, ["teacher"], "other")
    remove_bank("teacher", home)
    assert [b.name for b in list_banks(home)] == ["default"] and home.count("teacher-answer") == 0
    assert not (tmp_path / "home" / "banks" / "teacher").exists()
    with pytest.raises(ConfigError, match=r"no exemplar bank 'teacher' \(banks: default\); import one"):
        require_banks(home, ["teacher"], HashEmbedder.model_id)
    assert import_bank(write_bank(tmp_path, "coe-gift"), "teacher", embedder=HashEmbedder(), store=home).added == 3
    for bad in ("default", "a b", "../x", ""):
        with pytest.raises(InputError):
            import_bank(write_bank(tmp_path, "coe-gift"), bad, embedder=HashEmbedder(), store=home)
    with pytest.raises(InputError, match="default bank is ScienceQA's"):
        remove_bank("default", home)
    monkeypatch.setattr("coe.question_banks.importer.MAX_FILE_BYTES", 100)
    with pytest.raises(InputError, match="bank file too large"):
        import_bank(write_bank(tmp_path, "coe-gift"), "teacher", embedder=HashEmbedder(), store=home)
    assert parse_banks(["a,b", " b ", "c"]) == ("a", "b", "c") and parse_banks([]) == ("default",)


@pytest.mark.real_parts
def test_cli_imports_lists_and_removes_with_the_default_embedder(tmp_path):
    """The real default embedder, through the command line; a bad --bank on generate is a one-line input
    error."""
    from coe.paths import models_dir
    from coe.plugins.registry import resolve

    embedder = resolve("text_embedder")

    env = {**os.environ, "COE_HOME": str(tmp_path / "home"), "COE_CHROMA_DIR": str(tmp_path / "chroma"),
           "COE_MODELS_DIR": str(models_dir())}

    def coe(*args):
        return subprocess.run([sys.executable, "-m", "coe.cli", *args], check=False, capture_output=True, text=True,
                              env=env, timeout=300)

    bank = write_bank(tmp_path, "gift-wrapper")
    bank.write_text(bank.read_text("utf-8") + "\n\n::tf:: Grass is green. {T}\n", "utf-8")
    done = coe("bank", "import", str(bank), "--bank", "teacher", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["added"], report["format"], report["exemplars"]) == (3, "gift", 3)
    line = bank.read_text("utf-8").splitlines().index("::tf:: Grass is green. {T}") + 1
    assert report["problems"] == [{"position": f"line {line}", "kind": "skipped",
                                   "reason": "a true/false question, not multiple choice"}]
    listed = json.loads(coe("bank", "list", "--json").stdout)
    assert [(b["name"], b["exemplars"], b["embedder"]) for b in listed] == \
        [("teacher", 3, embedder.model_id)]
    store = ChromaStore(tmp_path / "chroma")
    found, _ = ExemplarRetriever(embedder, store, bank="teacher").retrieve(
        RetrievalQuery(answer="carrot", question="Which plant do rabbits eat?"), k=1)
    assert found[0].bank == "teacher" and found[0].answer == "rabbit"
    assert np.isclose(np.linalg.norm(store.get_embeddings("teacher-question", [found[0].id])[found[0].id]), 1.0, atol=1e-3)
    bad = coe("generate", "--answer", "fox", "--bank", "no such bank")
    assert bad.returncode == 2 and "bad bank name 'no such bank'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    gone = coe("bank", "remove", "teacher")
    assert gone.returncode == 0 and "removed bank teacher (3 exemplars)" in gone.stderr
    assert json.loads(coe("bank", "list", "--json").stdout) == []
